// SPDX-License-Identifier: Apache-2.0
/*
 * ferry-cni's commands (CNI spec 1.0, plus 1.1's GC and STATUS):
 *
 *   ADD      not meshed: pass prevResult through at once, without the agent;
 *            meshed: ask the agent to enroll the pod (netns, IPs from prevResult)
 *            and pass prevResult through once it has, else fail (the kubelet
 *            retries the sandbox)
 *   DEL      tell the agent, best effort; always succeeds
 *   CHECK    meshed and the agent answers: it must have the pod enrolled
 *   VERSION  the spec versions supported
 *   GC, STATUS  nothing to collect; always ready (an agent that is down must not
 *            make the runtime report the node's network as not ready)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry_cni.h"

#define DEFAULT_VERSION "1.0.0"

static int fail(const struct netconf *conf, const struct cni_env *env, const struct pod_args *pod,
		const struct cni_error *err)
{
	static const struct pod_args none;

	log_line(conf, env, pod != NULL ? pod : &none, "error", "%s", err->msg);
	fprintf(stderr, "ferry-cni: %s\n", err->msg);
	print_error(conf != NULL && conf->cni_version != NULL ? conf->cni_version : DEFAULT_VERSION, err);
	return 1;
}

static int cmd_version(void)
{
	json_t *versions = json_array(), *doc;

	for (const char *const *v = cni_supported_versions; *v != NULL; v++)
		json_array_append_new(versions, json_string(*v));
	doc = json_pack("{s:s, s:o}", "cniVersion", DEFAULT_VERSION, "supportedVersions", versions);
	print_json(doc);
	json_decref(doc);
	return 0;
}

/* The chain's result so far, unchanged: Ferry adds no interface and no address. */
static int pass_through(const struct netconf *conf)
{
	json_t *result = conf->prev_result != NULL ? json_deep_copy(conf->prev_result) : json_object();

	json_object_set_new(result, "cniVersion", json_string(conf->cni_version));
	print_json(result);
	json_decref(result);
	return 0;
}

/* The pod's addresses from prevResult ("10.244.1.5/24"), skipping those of host-side interfaces. */
static json_t *pod_ips(const struct netconf *conf)
{
	json_t *out = json_array(), *ips, *ifaces, *ip;
	size_t i;

	if (conf->prev_result == NULL)
		return out;
	ips = json_object_get(conf->prev_result, "ips");
	ifaces = json_object_get(conf->prev_result, "interfaces");
	json_array_foreach(ips, i, ip) {
		json_t *addr = json_object_get(ip, "address"), *idx = json_object_get(ip, "interface");

		if (!json_is_string(addr))
			continue;
		if (json_is_integer(idx) && json_is_array(ifaces)) {
			json_t *iface = json_array_get(ifaces, (size_t)json_integer_value(idx));
			const char *sandbox = json_string_value(json_object_get(iface, "sandbox"));

			if (iface != NULL && (sandbox == NULL || sandbox[0] == '\0'))
				continue;
		}
		json_array_append(out, addr);
	}
	return out;
}

static json_t *pod_request(const struct netconf *conf, const struct cni_env *env, const struct pod_args *pod)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:I}",
			 "containerId", env->container_id ? env->container_id : "", "netns", env->netns ? env->netns : "",
			 "ifname", env->ifname ? env->ifname : "", "namespace", pod->ns, "name", pod->name, "uid", pod->uid,
			 "infraContainerId", pod->infra, "ips", pod_ips(conf), "timeoutMs", (json_int_t)conf->timeout_ms);
}

/* The agent's reason from a refusal body {"error": "...", "code": "FERRY_ERR_..."}. */
static void refused(struct cni_error *err, const struct pod_args *pod, const struct agent_reply *reply)
{
	const char *why = json_string_value(json_object_get(reply->body, "error"));
	const char *code = json_string_value(json_object_get(reply->body, "code"));

	cni_fail(err, FERRY_CNI_ERR_REFUSED, "the Ferry agent cannot enroll pod %s/%s: %s", pod->ns, pod->name,
		 why != NULL ? why : "no reason given");
	snprintf(err->details, sizeof(err->details), "agent answered HTTP %d%s%s", reply->status,
		 code != NULL ? ", " : "", code != NULL ? code : "");
}

static int cmd_add(const struct netconf *conf, const struct cni_env *env, const struct pod_args *pod)
{
	struct cni_error err = { 0 };
	struct agent_reply reply;
	enum verdict verdict;
	const char *why = "";
	json_t *body;
	int rc;

	if (env->container_id == NULL || env->netns == NULL || env->netns[0] == '\0' || env->ifname == NULL) {
		cni_fail(&err, CNI_ERR_ENV, "ADD needs CNI_CONTAINERID, CNI_NETNS and CNI_IFNAME");
		return fail(conf, env, pod, &err);
	}
	if (decide(conf, pod, &verdict, &why, &err) != 0)
		return fail(conf, env, pod, &err);
	if (verdict == VERDICT_PASS) {
		log_line(conf, env, pod, "pass", "%s", why);
		return pass_through(conf);
	}
	body = pod_request(conf, env, pod);
	rc = agent_call(conf->agent_socket, "/v1/cni/add", body, conf->timeout_ms, true, &reply, &err);
	json_decref(body);
	if (rc != 0)
		return fail(conf, env, pod, &err);
	if (reply.status != 200) {
		refused(&err, pod, &reply);
		json_decref(reply.body);
		return fail(conf, env, pod, &err);
	}
	log_line(conf, env, pod, "enrolled", "%s; the agent answered: %s", why,
		 json_string_value(json_object_get(reply.body, "result")) ?: "ok");
	json_decref(reply.body);
	return pass_through(conf);
}

static int cmd_del(const struct netconf *conf, const struct cni_env *env, const struct pod_args *pod)
{
	struct cni_error err = { 0 };
	struct agent_reply reply;
	long timeout = conf->timeout_ms < FERRY_CNI_DEL_TIMEOUT_MS ? conf->timeout_ms : FERRY_CNI_DEL_TIMEOUT_MS;
	json_t *body;

	if (pod->ns[0] == '\0' || strcmp(pod->ns, FERRY_NEVER_HELD_NAMESPACE) == 0)
		return 0;
	body = pod_request(conf, env, pod);
	if (agent_call(conf->agent_socket, "/v1/cni/del", body, timeout, false, &reply, &err) != 0)
		log_line(conf, env, pod, "agent-unreachable", "%s (DEL succeeds anyway)", err.msg);
	else {
		log_line(conf, env, pod, "ok", "the agent answered HTTP %d", reply.status);
		json_decref(reply.body);
	}
	json_decref(body);
	return 0;
}

static int cmd_check(const struct netconf *conf, const struct cni_env *env, const struct pod_args *pod)
{
	struct cni_error err = { 0 };
	struct agent_reply reply;
	enum verdict verdict;
	const char *why = "";
	json_t *body;
	int rc;

	if (decide(conf, pod, &verdict, &why, &err) != 0)
		return fail(conf, env, pod, &err);
	if (verdict == VERDICT_PASS)
		return 0;
	body = pod_request(conf, env, pod);
	rc = agent_call(conf->agent_socket, "/v1/cni/check", body, conf->timeout_ms, false, &reply, &err);
	json_decref(body);
	if (rc != 0) {
		/* Nobody to ask: the pod's capture pins stay in place without the agent. */
		log_line(conf, env, pod, "unverified", "%s", err.msg);
		return 0;
	}
	if (reply.status != 200) {
		refused(&err, pod, &reply);
		json_decref(reply.body);
		return fail(conf, env, pod, &err);
	}
	json_decref(reply.body);
	return 0;
}

int main(void)
{
	struct cni_env env = {
		.command = getenv("CNI_COMMAND"),
		.container_id = getenv("CNI_CONTAINERID"),
		.netns = getenv("CNI_NETNS"),
		.ifname = getenv("CNI_IFNAME"),
		.args = getenv("CNI_ARGS"),
	};
	struct cni_error err = { 0 };
	struct netconf conf = { 0 };
	struct pod_args pod = { 0 };
	char *input = NULL;
	size_t len = 0;
	int rc;

	if (env.command == NULL) {
		cni_fail(&err, CNI_ERR_ENV, "CNI_COMMAND is not set (this is a CNI plugin: the container runtime runs it)");
		return fail(NULL, &env, NULL, &err);
	}
	if (strcmp(env.command, "VERSION") == 0)
		return cmd_version();
	if (strcmp(env.command, "GC") == 0 || strcmp(env.command, "STATUS") == 0)
		return 0;
	if (strcmp(env.command, "ADD") != 0 && strcmp(env.command, "DEL") != 0 && strcmp(env.command, "CHECK") != 0) {
		cni_fail(&err, CNI_ERR_ENV, "CNI_COMMAND \"%s\" is not ADD, DEL, CHECK, VERSION, GC or STATUS", env.command);
		return fail(NULL, &env, NULL, &err);
	}
	if (read_stdin(&input, &len, &err) != 0 || netconf_parse(input, len, &conf, &err) != 0 ||
	    pod_args_parse(env.args, &pod, &err) != 0) {
		/* DEL never fails: the sandbox goes away whatever Ferry thinks of its input. */
		if (strcmp(env.command, "DEL") == 0) {
			fprintf(stderr, "ferry-cni: DEL: %s (ignored)\n", err.msg);
			rc = 0;
		} else {
			rc = fail(conf.cni_version != NULL ? &conf : NULL, &env, &pod, &err);
		}
	} else if (strcmp(env.command, "ADD") == 0) {
		rc = cmd_add(&conf, &env, &pod);
	} else if (strcmp(env.command, "DEL") == 0) {
		rc = cmd_del(&conf, &env, &pod);
	} else {
		rc = cmd_check(&conf, &env, &pod);
	}
	json_decref(conf.root);
	free(input);
	return rc;
}
