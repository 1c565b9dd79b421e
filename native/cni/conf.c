// SPDX-License-Identifier: Apache-2.0
/*
 * Reading what the runtime hands the plugin: the network configuration on stdin
 * (parsed with jansson) and the Kubernetes pod's identity in CNI_ARGS.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "ferry_cni.h"

/* A network configuration is a few KiB; anything this large is not one. */
#define MAX_STDIN (1 << 20)

/*
 * 1.0.0 and 1.1.0 results and configurations are read the same way here: the
 * plugin only reads prevResult's ips and echoes prevResult back. 1.1's GC and
 * STATUS verbs are answered in main.c.
 */
const char *const cni_supported_versions[] = { "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0", NULL };

bool cni_version_supported(const char *version)
{
	for (const char *const *v = cni_supported_versions; *v != NULL; v++)
		if (strcmp(*v, version) == 0)
			return true;
	return false;
}

int read_stdin(char **buf, size_t *len, struct cni_error *err)
{
	size_t cap = 8192, used = 0;
	char *data = malloc(cap);

	if (data == NULL) {
		cni_fail(err, CNI_ERR_IO, "out of memory reading the network configuration");
		return -1;
	}
	for (;;) {
		if (used == cap) {
			char *bigger;

			if (cap >= MAX_STDIN) {
				free(data);
				cni_fail(err, CNI_ERR_DECODE, "the network configuration on stdin is larger than %d bytes", MAX_STDIN);
				return -1;
			}
			cap *= 2;
			bigger = realloc(data, cap);
			if (bigger == NULL) {
				free(data);
				cni_fail(err, CNI_ERR_IO, "out of memory reading the network configuration");
				return -1;
			}
			data = bigger;
		}
		ssize_t n = read(STDIN_FILENO, data + used, cap - used);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			int e = errno;

			free(data);
			cni_fail(err, CNI_ERR_IO, "cannot read the network configuration from stdin: %s", strerror(e));
			return -1;
		}
		if (n == 0)
			break;
		used += (size_t)n;
	}
	*buf = data;
	*len = used;
	return 0;
}

/* An optional string key: absent leaves *out alone; any other type is an error. */
static int optional_string(json_t *root, const char *key, const char **out, struct cni_error *err)
{
	json_t *v = json_object_get(root, key);

	if (v == NULL || json_is_null(v))
		return 0;
	if (!json_is_string(v) || json_string_length(v) == 0) {
		cni_fail(err, CNI_ERR_CONFIG, "network configuration key \"%s\" must be a non-empty string", key);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

static int absolute_path(const char *key, const char *path, struct cni_error *err)
{
	if (path[0] != '/') {
		cni_fail(err, CNI_ERR_CONFIG, "network configuration key \"%s\" must be an absolute path, got \"%s\"", key, path);
		return -1;
	}
	return 0;
}

int netconf_parse(const char *buf, size_t len, struct netconf *conf, struct cni_error *err)
{
	json_error_t jerr;
	json_t *root, *v, *runtime;

	memset(conf, 0, sizeof(*conf));
	root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		cni_fail(err, CNI_ERR_DECODE, "the network configuration on stdin is not valid JSON: %s (line %d, column %d)",
			 jerr.text, jerr.line, jerr.column);
		return -1;
	}
	conf->root = root;
	if (!json_is_object(root)) {
		cni_fail(err, CNI_ERR_DECODE, "the network configuration on stdin must be a JSON object");
		return -1;
	}
	v = json_object_get(root, "cniVersion");
	if (!json_is_string(v)) {
		cni_fail(err, CNI_ERR_CONFIG, "the network configuration has no \"cniVersion\" string");
		return -1;
	}
	conf->cni_version = json_string_value(v);
	if (!cni_version_supported(conf->cni_version)) {
		cni_fail(err, CNI_ERR_VERSION, "CNI version \"%s\" is not supported (ferry-cni supports 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)",
			 conf->cni_version);
		return -1;
	}
	conf->agent_socket = FERRY_CNI_DEFAULT_SOCKET;
	conf->state_file = FERRY_CNI_DEFAULT_STATE;
	conf->timeout_ms = FERRY_CNI_DEFAULT_TIMEOUT_MS;
	if (optional_string(root, "agentSocket", &conf->agent_socket, err) ||
	    optional_string(root, "stateFile", &conf->state_file, err) ||
	    optional_string(root, "logFile", &conf->log_file, err))
		return -1;
	if (absolute_path("agentSocket", conf->agent_socket, err) || absolute_path("stateFile", conf->state_file, err) ||
	    (conf->log_file != NULL && absolute_path("logFile", conf->log_file, err)))
		return -1;
	if (strlen(conf->agent_socket) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		cni_fail(err, CNI_ERR_CONFIG, "network configuration key \"agentSocket\" is longer than a unix socket path may be");
		return -1;
	}
	v = json_object_get(root, "timeoutMs");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > FERRY_CNI_MAX_TIMEOUT_MS) {
			cni_fail(err, CNI_ERR_CONFIG, "network configuration key \"timeoutMs\" must be a whole number of milliseconds from 1 to %d",
				 FERRY_CNI_MAX_TIMEOUT_MS);
			return -1;
		}
		conf->timeout_ms = (long)json_integer_value(v);
	}
	v = json_object_get(root, "prevResult");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_object(v)) {
			cni_fail(err, CNI_ERR_CONFIG, "network configuration key \"prevResult\" must be an object");
			return -1;
		}
		conf->prev_result = v;
	}
	runtime = json_object_get(root, "runtimeConfig");
	if (json_is_object(runtime)) {
		v = json_object_get(runtime, CRI_POD_ANNOTATIONS);
		if (v != NULL && !json_is_null(v)) {
			if (!json_is_object(v)) {
				cni_fail(err, CNI_ERR_CONFIG, "runtimeConfig[\"%s\"] must be an object of strings", CRI_POD_ANNOTATIONS);
				return -1;
			}
			conf->annotations = v;
		}
	}
	return 0;
}

/* Copies one K8S_* value; a value that does not fit is an error, never truncated. */
static int take(char *dst, size_t cap, const char *key, const char *value, size_t len, struct cni_error *err)
{
	if (len >= cap) {
		cni_fail(err, CNI_ERR_ENV, "CNI_ARGS %s is longer than %zu characters", key, cap - 1);
		return -1;
	}
	memcpy(dst, value, len);
	dst[len] = '\0';
	return 0;
}

int pod_args_parse(const char *cni_args, struct pod_args *args, struct cni_error *err)
{
	memset(args, 0, sizeof(*args));
	if (cni_args == NULL)
		return 0;
	/* "K1=V1;K2=V2": keys Ferry does not know are ignored (IgnoreUnknown, others). */
	for (const char *p = cni_args; *p != '\0';) {
		const char *end = strchr(p, ';');
		size_t n = end == NULL ? strlen(p) : (size_t)(end - p);
		const char *eq = memchr(p, '=', n);

		if (eq != NULL) {
			size_t klen = (size_t)(eq - p), vlen = n - klen - 1;
			struct { const char *key; char *dst; } known[] = {
				{ "K8S_POD_NAMESPACE", args->ns },
				{ "K8S_POD_NAME", args->name },
				{ "K8S_POD_UID", args->uid },
				{ "K8S_POD_INFRA_CONTAINER_ID", args->infra },
			};
			for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
				if (strlen(known[i].key) == klen && memcmp(known[i].key, p, klen) == 0 &&
				    take(known[i].dst, sizeof(args->ns), known[i].key, eq + 1, vlen, err))
					return -1;
			}
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
	return 0;
}
