// SPDX-License-Identifier: Apache-2.0
/*
 * What the plugin says: results and CNI errors on stdout (the runtime reads them),
 * and one JSON line per call in the configured log file (stdout is the runtime's,
 * and the runtime keeps a plugin's stderr only when it fails).
 */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ferry_cni.h"

/* The log file is rotated once (to <file>.1) past this size, so it never fills the disk. */
#define LOG_MAX_BYTES (1 << 20)

void cni_fail(struct cni_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	err->code = code;
	va_start(ap, fmt);
	vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	va_end(ap);
}

int print_json(json_t *doc)
{
	int rc = json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);

	fputc('\n', stdout);
	fflush(stdout);
	return rc;
}

void print_error(const char *cni_version, const struct cni_error *err)
{
	json_t *doc = json_pack("{s:s, s:i, s:s}", "cniVersion", cni_version, "code", err->code, "msg", err->msg);

	if (doc == NULL)
		return;
	if (err->details[0] != '\0')
		json_object_set_new(doc, "details", json_string(err->details));
	print_json(doc);
	json_decref(doc);
}

static void rotate_if_large(const char *path)
{
	struct stat st;
	char old[4096];

	if (stat(path, &st) != 0 || st.st_size < LOG_MAX_BYTES)
		return;
	if (snprintf(old, sizeof(old), "%s.1", path) < (int)sizeof(old))
		rename(path, old);
}

void log_line(const struct netconf *conf, const struct cni_env *env, const struct pod_args *pod,
	      const char *result, const char *fmt, ...)
{
	char msg[1024], when[32], podname[520];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	json_t *line;
	char *text;
	int fd;

	if (conf == NULL || conf->log_file == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when) - 5, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + strlen(when), 6, ".%03dZ", (int)(ts.tv_nsec / 1000000));
	snprintf(podname, sizeof(podname), "%s/%s", pod->ns, pod->name);
	line = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "time", when, "command", env->command ? env->command : "",
			 "pod", podname, "uid", pod->uid, "container", env->container_id ? env->container_id : "",
			 "result", result, "msg", msg);
	if (line == NULL)
		return;
	text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(line);
	if (text == NULL)
		return;
	rotate_if_large(conf->log_file);
	fd = open(conf->log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0) {
		size_t len = strlen(text);

		text[len] = '\n';
		/* One write of an O_APPEND file: concurrent plugin runs do not interleave lines. */
		if (write(fd, text, len + 1) < 0) {
			/* Logging is best effort: the call's outcome is on stdout. */
		}
		close(fd);
	}
	free(text);
}
