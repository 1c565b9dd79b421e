// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Probe admission, the kubelet's half: sockops on the kubelet's cgroup.
 *
 * Just before the SYN of a connection the kubelet makes to an enrolled pod address
 * leaves (TCP_CONNECT_CB: the source address and port are chosen by then), record its
 * tuple in ferry_probe_conns; sk_lookup.bpf.c, in the pod's netns, lets a SYN with a
 * recorded tuple to one of the pod's probe ports reach the application instead of the
 * proxy. The record is deleted when that socket closes (STATE_CB, asked for only on
 * these sockets), so a later connection that reuses the tuple is not the kubelet's.
 *
 * Only a socket created by a process in the kubelet's cgroup (or below it) runs this
 * program; a socket in an enrolled pod's netns is never taken for the kubelet's, even
 * if a pod's cgroup were placed below the kubelet's.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "ferry_sock.h"

/* The connection of the socket in @ctx as the probe key names it; 0 or -errno. */
static __always_inline int probe_key_of(struct bpf_sock_ops *ctx, struct ferry_probe_key *key)
{
	struct ferry_sock_key sk;
	int err;

	err = ferry_sock_key_from(ctx, &sk);
	if (err)
		return err;
	__builtin_memset(key, 0, sizeof(*key));
	key->family = sk.family;
	key->src_port = sk.local_port;
	key->dst_port = sk.remote_port;
	__builtin_memcpy(key->src_addr, sk.local_addr, sizeof(key->src_addr));
	__builtin_memcpy(key->dst_addr, sk.remote_addr, sizeof(key->dst_addr));
	return 0;
}

/* Records a connection to an enrolled pod; -ENOENT for any other destination. */
static __always_inline int record_probe(struct bpf_sock_ops *ctx)
{
	__u64 netns = bpf_get_netns_cookie(ctx);
	struct ferry_probe_conn conn = {};
	struct ferry_probe_key key;
	struct ferry_ip_key ip;
	int err;

	if (bpf_map_lookup_elem(&ferry_pods, &netns))
		return -EPERM;
	err = probe_key_of(ctx, &key);
	if (err)
		return err;
	__builtin_memset(&ip, 0, sizeof(ip));
	ip.family = key.family;
	__builtin_memcpy(ip.addr, key.dst_addr, sizeof(ip.addr));
	if (!bpf_map_lookup_elem(&ferry_pod_ips, &ip))
		return -ENOENT;
	conn.connected_ns = bpf_ktime_get_ns();
	conn.sock_cookie = bpf_get_socket_cookie(ctx);
	return bpf_map_update_elem(&ferry_probe_conns, &key, &conn, BPF_ANY);
}

/* Deletes the socket's record, if the record is still this socket's. */
static __always_inline void forget_probe(struct bpf_sock_ops *ctx)
{
	struct ferry_probe_conn *conn;
	struct ferry_probe_key key;

	if (probe_key_of(ctx, &key))
		return;
	conn = bpf_map_lookup_elem(&ferry_probe_conns, &key);
	if (conn && conn->sock_cookie == bpf_get_socket_cookie(ctx))
		bpf_map_delete_elem(&ferry_probe_conns, &key);
}

SEC("sockops")
int ferry_kubelet_sockops(struct bpf_sock_ops *ctx)
{
	switch (ctx->op) {
	case BPF_SOCK_OPS_TCP_CONNECT_CB:
		if (record_probe(ctx) == 0)
			bpf_sock_ops_cb_flags_set(ctx, ctx->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
		break;
	case BPF_SOCK_OPS_STATE_CB:
		/* args[1] is the new state; the tuple is still the socket's at this point. */
		if (ctx->args[1] == BPF_TCP_CLOSE)
			forget_probe(ctx);
		break;
	}
	return 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
