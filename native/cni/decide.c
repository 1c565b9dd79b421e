// SPDX-License-Identifier: Apache-2.0
/*
 * Is this pod meshed? Decided without the agent, so that a pod the mesh does not
 * concern never waits for it:
 *
 *   kube-system                               never held back
 *   no K8S_POD_NAMESPACE / K8S_POD_NAME       not a Kubernetes pod: pass
 *   no state file                             Ferry does not run on this node: pass
 *   annotation ferry.dev/mesh=enabled         meshed     (the runtime's annotations when
 *   annotation ferry.dev/mesh=disabled        not meshed  it passes them, else the
 *                                                          state file's entry for the pod)
 *   otherwise                                 meshed iff its namespace is in the state
 *                                             file's meshedNamespaces
 *
 * The same rule as isMeshed() in src/discovery/mesh-policy.ts; the state file is
 * written by src/cni/state-file.ts (format version 1).
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "ferry_cni.h"

#define STATE_VERSION 1

/* "enabled", "disabled" or NULL from an annotation value. */
static const char *mesh_value(json_t *v)
{
	const char *s = json_string_value(v);

	if (s != NULL && (strcmp(s, "enabled") == 0 || strcmp(s, "disabled") == 0))
		return s;
	return NULL;
}

/* The state file's word on this pod (its mesh annotation), or NULL. */
static const char *state_pod_value(json_t *pods, const struct pod_args *pod)
{
	size_t i;
	json_t *entry;

	json_array_foreach(pods, i, entry) {
		const char *ns = json_string_value(json_object_get(entry, "namespace"));
		const char *name = json_string_value(json_object_get(entry, "name"));
		const char *uid = json_string_value(json_object_get(entry, "uid"));

		if (ns == NULL || name == NULL || strcmp(ns, pod->ns) != 0 || strcmp(name, pod->name) != 0)
			continue;
		/* A pod of the same name that was replaced: the entry is about the old one. */
		if (uid != NULL && pod->uid[0] != '\0' && strcmp(uid, pod->uid) != 0)
			continue;
		return mesh_value(json_object_get(entry, "mesh"));
	}
	return NULL;
}

static bool namespace_meshed(json_t *namespaces, const char *ns)
{
	size_t i;
	json_t *v;

	json_array_foreach(namespaces, i, v) {
		const char *s = json_string_value(v);

		if (s != NULL && strcmp(s, ns) == 0)
			return true;
	}
	return false;
}

int decide(const struct netconf *conf, const struct pod_args *pod, enum verdict *verdict,
	   const char **why, struct cni_error *err)
{
	json_error_t jerr;
	json_t *state, *namespaces, *pods;
	const char *value = NULL;
	struct stat st;

	*verdict = VERDICT_PASS;
	if (pod->ns[0] == '\0' || pod->name[0] == '\0') {
		*why = "not a Kubernetes pod (no K8S_POD_NAMESPACE/K8S_POD_NAME in CNI_ARGS)";
		return 0;
	}
	if (strcmp(pod->ns, FERRY_NEVER_HELD_NAMESPACE) == 0) {
		*why = "kube-system is never held back";
		return 0;
	}
	if (stat(conf->state_file, &st) != 0 && errno == ENOENT) {
		*why = "no state file: Ferry's agent does not run on this node";
		return 0;
	}
	state = json_load_file(conf->state_file, JSON_REJECT_DUPLICATES, &jerr);
	if (state == NULL) {
		cni_fail(err, FERRY_CNI_ERR_STATE, "state file %s cannot be read (%s): cannot tell whether pod %s/%s is meshed",
			 conf->state_file, jerr.text, pod->ns, pod->name);
		return -1;
	}
	namespaces = json_object_get(state, "meshedNamespaces");
	pods = json_object_get(state, "pods");
	if (!json_is_object(state) || json_integer_value(json_object_get(state, "version")) != STATE_VERSION ||
	    !json_is_array(namespaces) || !json_is_array(pods)) {
		json_decref(state);
		cni_fail(err, FERRY_CNI_ERR_STATE,
			 "state file %s is not a version %d Ferry CNI state (an object with meshedNamespaces and pods): cannot tell whether pod %s/%s is meshed",
			 conf->state_file, STATE_VERSION, pod->ns, pod->name);
		return -1;
	}
	if (conf->annotations != NULL)
		value = mesh_value(json_object_get(conf->annotations, FERRY_MESH_KEY));
	else
		value = state_pod_value(pods, pod);
	if (value != NULL) {
		*verdict = strcmp(value, "enabled") == 0 ? VERDICT_MESHED : VERDICT_PASS;
		*why = *verdict == VERDICT_MESHED ? "annotation ferry.dev/mesh=enabled" : "annotation ferry.dev/mesh=disabled";
	} else if (namespace_meshed(namespaces, pod->ns)) {
		*verdict = VERDICT_MESHED;
		*why = "namespace meshed";
	} else {
		*why = "namespace not meshed";
	}
	json_decref(state);
	return 0;
}
