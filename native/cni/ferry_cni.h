/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ferry-cni: a chained CNI plugin (CNI spec 1.0/1.1) that holds a meshed pod's
 * sandbox until the node's Ferry agent has enrolled it in capture, so that no
 * connection of the pod leaves or arrives before capture is in place.
 *
 * The runtime runs it on the host, after the primary CNI plugin: it reads
 * CNI_* from the environment and its network configuration (with the primary's
 * prevResult) from stdin. Whether a pod is meshed comes from the state file the
 * agent keeps current, and from the pod's annotations when the runtime passes
 * them (capability io.kubernetes.cri.pod-annotations); only a meshed pod makes
 * the plugin contact the agent (HTTP/1.1 over its unix socket). The agent's side
 * is src/cni/server.ts; the contract both sides keep is src/cni/protocol.ts.
 */
#ifndef FERRY_CNI_H
#define FERRY_CNI_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/*
 * CNI error codes: the spec's well-known ones, and Ferry's own from 100.
 * docs/install.md ("The ferry-cni plugin") lists them for people.
 */
enum cni_code {
	CNI_ERR_VERSION = 1,	 /* incompatible CNI version */
	CNI_ERR_ENV = 4,	 /* invalid environment variables */
	CNI_ERR_IO = 5,		 /* I/O failure */
	CNI_ERR_DECODE = 6,	 /* stdin is not a JSON object */
	CNI_ERR_CONFIG = 7,	 /* invalid network configuration */
	CNI_ERR_TRY_AGAIN = 11,	 /* the agent cannot be reached or did not answer in time */
	FERRY_CNI_ERR_REFUSED = 100, /* the agent answered that it cannot enroll the pod */
	FERRY_CNI_ERR_STATE = 101,   /* the state file exists but cannot be read */
};

/* Defaults of the network-configuration keys (docs/install.md). */
#define FERRY_CNI_DEFAULT_SOCKET "/var/run/ferry/cni.sock"
#define FERRY_CNI_DEFAULT_STATE "/var/run/ferry/cni-state.json"
#define FERRY_CNI_DEFAULT_TIMEOUT_MS 30000
#define FERRY_CNI_MAX_TIMEOUT_MS 300000
/* DEL must not hold a sandbox's teardown: one attempt, this long at most. */
#define FERRY_CNI_DEL_TIMEOUT_MS 2000

/* The annotation and namespace that decide meshing (src/discovery/mesh-policy.ts). */
#define FERRY_MESH_KEY "ferry.dev/mesh"
#define FERRY_NEVER_HELD_NAMESPACE "kube-system"
#define CRI_POD_ANNOTATIONS "io.kubernetes.cri.pod-annotations"

struct cni_error {
	int code;
	char msg[512];
	char details[1024];
};

/* The network configuration from stdin; every pointer borrows from `root`. */
struct netconf {
	json_t *root;
	const char *cni_version;
	const char *agent_socket;
	const char *state_file;
	const char *log_file;	/* NULL: no log file */
	long timeout_ms;
	json_t *prev_result;	/* NULL when the runtime gave none */
	json_t *annotations;	/* the pod's annotations, NULL when the runtime gave none */
};

/* K8S_* of CNI_ARGS (empty strings when absent). */
struct pod_args {
	char ns[256];
	char name[256];
	char uid[256];
	char infra[256];
};

struct cni_env {
	const char *command;
	const char *container_id;
	const char *netns;
	const char *ifname;
	const char *args;
};

/* conf.c */
extern const char *const cni_supported_versions[];
bool cni_version_supported(const char *version);
int netconf_parse(const char *buf, size_t len, struct netconf *conf, struct cni_error *err);
int pod_args_parse(const char *cni_args, struct pod_args *args, struct cni_error *err);
int read_stdin(char **buf, size_t *len, struct cni_error *err);

/* decide.c */
enum verdict { VERDICT_PASS, VERDICT_MESHED };
int decide(const struct netconf *conf, const struct pod_args *pod, enum verdict *verdict,
	   const char **why, struct cni_error *err);

/* agent.c */
struct agent_reply {
	int status;	/* HTTP status */
	json_t *body;	/* the reply's JSON object, or NULL */
};
int agent_call(const char *socket_path, const char *path, json_t *body, long timeout_ms,
	       bool retry, struct agent_reply *reply, struct cni_error *err);

/* output.c */
void cni_fail(struct cni_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void print_error(const char *cni_version, const struct cni_error *err);
int print_json(json_t *doc);
void log_line(const struct netconf *conf, const struct cni_env *env, const struct pod_args *pod,
	      const char *result, const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif /* FERRY_CNI_H */
