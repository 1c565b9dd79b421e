// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * cgroup/getpeername4 and cgroup/getpeername6 on a pod's cgroup: an application
 * whose connect() was captured sees the destination it asked for as its peer,
 * not the outbound listener, so logs and protocol checks stay truthful.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "ferry_addr.h"

/* Set by the loader (src/capture); must equal connect.bpf.c's. */
const volatile __u16 ferry_outbound_port = 15001;

/* Returns the recorded destination of a socket still peered with the listener. */
static __always_inline struct ferry_dst *captured_dst(struct bpf_sock_addr *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);

	if (bpf_ntohs((__u16)ctx->user_port) != ferry_outbound_port)
		return NULL;
	return bpf_map_lookup_elem(&ferry_conn_by_cookie, &cookie);
}

static __always_inline int restore4(struct bpf_sock_addr *ctx)
{
	struct ferry_dst *dst = captured_dst(ctx);
	__u32 addr;

	if (!dst || dst->family != FERRY_FAMILY_V4 || ctx->user_ip4 != FERRY_LOOPBACK4_BE)
		return -ENOENT;
	__builtin_memcpy(&addr, dst->addr, sizeof(addr));
	ctx->user_ip4 = addr;
	ctx->user_port = bpf_htons(dst->port);
	return 0;
}

static __always_inline int restore6(struct bpf_sock_addr *ctx)
{
	struct ferry_dst *dst = captured_dst(ctx);
	__u32 ip6[4];

	if (!dst)
		return -ENOENT;
	if (dst->family == FERRY_FAMILY_V4) {
		/* Captured through ::ffff:127.0.0.1: give back ::ffff:<original>. */
		ip6[0] = 0;
		ip6[1] = 0;
		ip6[2] = FERRY_V4MAPPED_BE;
		__builtin_memcpy(&ip6[3], dst->addr, sizeof(ip6[3]));
	} else {
		__builtin_memcpy(ip6, dst->addr, sizeof(ip6));
	}
	ctx->user_ip6[0] = ip6[0];
	ctx->user_ip6[1] = ip6[1];
	ctx->user_ip6[2] = ip6[2];
	ctx->user_ip6[3] = ip6[3];
	ctx->user_port = bpf_htons(dst->port);
	return 0;
}

/* getpeername programs must return 1; a miss leaves the real peer in place. */
SEC("cgroup/getpeername4")
int ferry_getpeername4(struct bpf_sock_addr *ctx)
{
	restore4(ctx);
	return 1;
}

SEC("cgroup/getpeername6")
int ferry_getpeername6(struct bpf_sock_addr *ctx)
{
	restore6(ctx);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
