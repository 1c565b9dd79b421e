// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * sockops on a pod's cgroup: outbound capture's second half, and the pod's end
 * of each plaintext pod <-> proxy hop for sk_msg.bpf.c.
 *
 * When a captured connection is established, the proxy's accepted socket can name
 * it only by {pod netns cookie, family, peer port}: two pods produce identical
 * 127.0.0.1:P -> 127.0.0.1:15001 tuples, the netns cookie tells them apart. Copy
 * the record connect.bpf.c made under the socket cookie to that key. The record
 * under the cookie stays for getpeername.bpf.c.
 *
 * The pod's ends of the two plaintext hops go into ferry_socks: the captured
 * connect (its peer is the proxy's accepted socket) and an accepted connection whose
 * peer address is the pod's own (the proxy connects to the app from inside the pod's
 * netns, see src/proxy/connect.ts). Anything else a pod does is left alone. The
 * proxy adds its ends itself; until it does, the pod's sockets simply take TCP.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "ferry_sock.h"

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

static __always_inline void add_pod_end(struct bpf_sock_ops *ctx, int passive)
{
	struct ferry_sock_key key;
	struct ferry_sock_state *st;
	struct bpf_sock *sk = ctx->sk;

	if (!sk || ferry_sock_key_from(ctx, &key))
		return;
	if (passive && (key.local_addr[0] != key.remote_addr[0] || key.local_addr[1] != key.remote_addr[1] ||
			key.local_addr[2] != key.remote_addr[2] || key.local_addr[3] != key.remote_addr[3]))
		return;
	/* A full map costs only the shortcut: the connection goes on over TCP. */
	if (bpf_sock_hash_update(ctx, &ferry_socks, &key, BPF_NOEXIST) != 0)
		return;
	/* No storage (no memory): sk_msg publishes this end, without its bases, when it first sends. */
	st = bpf_sk_storage_get(&ferry_sock_state, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st)
		return;
	st->snd_base = ctx->snd_nxt;
	st->rcv_base = ctx->rcv_nxt;
	st->flags = FERRY_SOCK_S_POD_END;
	/* bpf_get_socket_cookie gives the socket its cookie if it had none. */
	ferry_sock_publish(&key, (__u64)sk, bpf_get_socket_cookie(ctx), st);
}

SEC("sockops")
int ferry_sockops(struct bpf_sock_ops *ctx)
{
	switch (ctx->op) {
	case BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB:
		if (publish_orig_dst(ctx) == 0)
			add_pod_end(ctx, 0);
		break;
	case BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
		add_pod_end(ctx, 1);
		break;
	}
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
