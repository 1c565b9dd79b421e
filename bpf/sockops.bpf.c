// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Outbound capture, second half: sockops on a pod's cgroup.
 *
 * When a captured connection is established, the proxy's accepted socket can name
 * it only by {pod netns cookie, family, peer port}: two pods produce identical
 * 127.0.0.1:P -> 127.0.0.1:15001 tuples, the netns cookie tells them apart. Copy
 * the record connect.bpf.c made under the socket cookie to that key. The record
 * under the cookie stays for getpeername.bpf.c.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "ferry_maps.h"

static __always_inline int publish_orig_dst(struct bpf_sock_ops *ctx)
{
	__u64 cookie = bpf_get_socket_cookie(ctx);
	struct ferry_orig_key key = {};
	struct ferry_dst *dst;

	dst = bpf_map_lookup_elem(&ferry_conn_by_cookie, &cookie);
	if (!dst)
		return -ENOENT;
	key.netns_cookie = bpf_get_netns_cookie(ctx);
	/* The recorded family, not the socket's: a v4-mapped v6 socket is v4 on the wire. */
	key.family = dst->family;
	key.port = (__u16)ctx->local_port;
	return bpf_map_update_elem(&ferry_orig_dst, &key, dst, BPF_ANY);
}

SEC("sockops")
int ferry_sockops(struct bpf_sock_ops *ctx)
{
	if (ctx->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
		publish_orig_dst(ctx);
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
