// SPDX-License-Identifier: Apache-2.0
/*
 * One request to the node's Ferry agent: HTTP/1.1 POST of a JSON body over its
 * unix socket, `Connection: close`, the whole exchange bounded by one deadline.
 * While the agent is not there (socket missing, nobody listening) or when it goes
 * away mid-request (its SIGTERM closes the connection unanswered), the request is
 * sent again with backoff until the deadline when asked to: an ADD in flight during
 * an agent restart is answered by the next agent.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ferry_cni.h"

/* The agent's replies are a line of JSON. */
#define MAX_REPLY (64 * 1024)
#define RETRY_FIRST_MS 50
#define RETRY_MAX_MS 1000

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* A connected socket, or -1 with errno set. A unix connect never completes later: it works or fails now. */
static int connect_once(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -1;
	strncpy(addr.sun_path, path, sizeof(addr.sun_path) - 1);
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	return fd;
}

/* Waits for `events` on fd until the deadline: 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, long deadline)
{
	for (;;) {
		long left = deadline - now_ms();
		struct pollfd p = { .fd = fd, .events = events };
		int n;

		if (left <= 0)
			return 0;
		n = poll(&p, 1, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		return n < 0 ? -1 : n;
	}
}

/*
 * After a send or recv that returned n: 1 to try the call again (it would have blocked
 * or was interrupted, and fd became ready in time), 0 to go on with n, -1 to fail
 * (errno set; ETIMEDOUT at the deadline).
 */
static int again(ssize_t n, int fd, short events, long deadline)
{
	int r;

	if (n >= 0 || (errno != EAGAIN && errno != EINTR))
		return n < 0 ? -1 : 0;
	r = wait_fd(fd, events, deadline);
	if (r == 0)
		errno = ETIMEDOUT;
	return r > 0 ? 1 : -1;
}

static int send_all(int fd, const char *data, size_t len, long deadline)
{
	while (len > 0) {
		ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
		int r = again(n, fd, POLLOUT, deadline);

		if (r < 0)
			return -1;
		if (r > 0)
			continue;
		data += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads until the agent closes; the reply is NUL-terminated in buf. */
static ssize_t recv_all(int fd, char *buf, size_t cap, long deadline)
{
	size_t used = 0;

	for (;;) {
		ssize_t n;
		int r;

		if (used + 1 >= cap) {
			errno = EMSGSIZE;
			return -1;
		}
		n = recv(fd, buf + used, cap - used - 1, 0);
		r = again(n, fd, POLLIN, deadline);
		if (r < 0)
			return -1;
		if (r > 0)
			continue;
		if (n == 0)
			break;
		used += (size_t)n;
	}
	buf[used] = '\0';
	return (ssize_t)used;
}

/* "HTTP/1.1 200 OK\r\n...\r\n\r\n{json}" → status and body. */
static int parse_reply(const char *text, struct agent_reply *reply)
{
	const char *body;
	int status;

	if (sscanf(text, "HTTP/1.%*1d %3d", &status) != 1 || status < 100 || status > 599)
		return -1;
	reply->status = status;
	body = strstr(text, "\r\n\r\n");
	reply->body = body == NULL ? NULL : json_loads(body + 4, 0, NULL);
	if (reply->body != NULL && !json_is_object(reply->body)) {
		json_decref(reply->body);
		reply->body = NULL;
	}
	return 0;
}

/* Where one exchange stopped. */
enum stage { STAGE_CONNECT, STAGE_TALK, STAGE_REPLY };

/*
 * One connection: request out, whole reply in. 0 with *reply set; -1 with errno and
 * *stage. An agent that goes away mid-request (its SIGTERM: it closes the connection
 * without answering) reads as an empty reply, errno ECONNRESET.
 */
static int exchange(const char *socket_path, const char *header, const char *payload, long deadline,
		    char *answer, struct agent_reply *reply, enum stage *stage)
{
	ssize_t got;
	int fd;

	*stage = STAGE_CONNECT;
	fd = connect_once(socket_path);
	if (fd < 0)
		return -1;
	*stage = STAGE_TALK;
	if (send_all(fd, header, strlen(header), deadline) != 0 || send_all(fd, payload, strlen(payload), deadline) != 0 ||
	    (got = recv_all(fd, answer, MAX_REPLY, deadline)) < 0) {
		int e = errno;

		close(fd);
		errno = e;
		return -1;
	}
	close(fd);
	if (got == 0) {
		errno = ECONNRESET;
		return -1;
	}
	*stage = STAGE_REPLY;
	if (parse_reply(answer, reply) != 0) {
		errno = EPROTO;
		return -1;
	}
	return 0;
}

/* Worth another try before the deadline: nobody listens yet, or the agent left mid-request. */
static bool transient(enum stage stage, int e)
{
	if (stage == STAGE_CONNECT)
		return e == ENOENT || e == ECONNREFUSED || e == EAGAIN;
	return stage == STAGE_TALK && (e == ECONNRESET || e == EPIPE);
}

int agent_call(const char *socket_path, const char *path, json_t *body, long timeout_ms,
	       bool retry, struct agent_reply *reply, struct cni_error *err)
{
	long deadline = now_ms() + timeout_ms, backoff = RETRY_FIRST_MS;
	char header[256], *payload, *answer;
	enum stage stage;
	int rc = -1, e = 0;

	memset(reply, 0, sizeof(*reply));
	payload = json_dumps(body, JSON_COMPACT);
	answer = malloc(MAX_REPLY);
	if (payload == NULL || answer == NULL) {
		free(payload);
		free(answer);
		cni_fail(err, CNI_ERR_IO, "out of memory building the request to the Ferry agent");
		return -1;
	}
	snprintf(header, sizeof(header),
		 "POST %s HTTP/1.1\r\nHost: ferry-agent\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		 path, strlen(payload));
	for (;;) {
		long left;

		rc = exchange(socket_path, header, payload, deadline, answer, reply, &stage);
		if (rc == 0)
			break;
		e = errno;
		left = deadline - now_ms();
		if (!retry || left <= 0 || !transient(stage, e))
			break;
		sleep_ms(backoff < left ? backoff : left);
		backoff = backoff * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : backoff * 2;
	}
	free(payload);
	free(answer);
	if (rc == 0)
		return 0;
	if (e == ETIMEDOUT)
		cni_fail(err, CNI_ERR_TRY_AGAIN, "the Ferry agent at %s did not answer within %ld ms", socket_path, timeout_ms);
	else if (stage == STAGE_CONNECT)
		cni_fail(err, CNI_ERR_TRY_AGAIN, "cannot reach the Ferry agent at %s%s: %s", socket_path,
			 retry ? " before the timeout" : "", strerror(e));
	else if (stage == STAGE_REPLY)
		cni_fail(err, CNI_ERR_TRY_AGAIN, "the Ferry agent at %s sent a reply that is not HTTP", socket_path);
	else
		cni_fail(err, CNI_ERR_TRY_AGAIN, "talking to the Ferry agent at %s failed: %s", socket_path, strerror(e));
	return -1;
}
