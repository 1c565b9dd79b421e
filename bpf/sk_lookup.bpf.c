// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Inbound capture: sk_lookup attached to a pod's network namespace.
 *
 * A TCP SYN to an enrolled pod address is handed to the agent's inbound listener
 * (bound to 127.0.0.1:15006 / [::1]:15006 in the pod namespace; sk_lookup ignores
 * the bound address). The accepted socket's local address is the original
 * destination. Each data-path worker has its own pair of listeners: the program picks
 * a live worker's and assigns it with BPF_SK_LOOKUP_F_NO_REUSEPORT, so a pod process
 * that joins their SO_REUSEPORT group gets nothing (ferry_workers.h). bpf_get_netns_cookie is not allowed here, so the pod is found by
 * the destination address.
 *
 * Probe admission: a SYN whose tuple kubelet.bpf.c recorded (a connection the kubelet
 * made, not yet closed, recorded less than ferry_probe_fresh_ns ago) to one of the
 * pod's probe ports is left to the normal lookup, so it reaches the application and
 * never the proxy; any other connection from the node is steered like all plaintext.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "ferry_addr.h"
#include "ferry_workers.h"

#define FERRY_LOOPBACK_IFINDEX	1

/* Set by the loader (src/capture); the default is PORTS.inbound. */
const volatile __u16 ferry_inbound_port = 15006;
/* Set by the loader (src/capture/programs.ts): how long a kubelet record admits a SYN. */
const volatile __u64 ferry_probe_fresh_ns = 10000000000ULL;

/*
 * The proxy's hop to the application goes over lo from 127.0.0.1 / ::1; steering
 * it again would loop. The sk_lookup context has no socket mark to tell.
 */
static __always_inline int from_loopback(struct bpf_sk_lookup *ctx)
{
	__u32 remote6[4];

	if (ctx->ingress_ifindex == FERRY_LOOPBACK_IFINDEX)
		return 1;
	if (ctx->family == AF_INET)
		return (bpf_ntohl(ctx->remote_ip4) >> 24) == 127;
	remote6[0] = ctx->remote_ip6[0];
	remote6[1] = ctx->remote_ip6[1];
	remote6[2] = ctx->remote_ip6[2];
	remote6[3] = ctx->remote_ip6[3];
	return ferry_is_loopback6(remote6);
}

/* Looks up the enrolled pod owning the local (destination) or remote address. */
static __always_inline struct ferry_pod *pod_of(struct bpf_sk_lookup *ctx, int remote)
{
	struct ferry_ip_key key;
	__u32 ip6[4];

	if (ctx->family == AF_INET) {
		ferry_ip_key4(&key, remote ? ctx->remote_ip4 : ctx->local_ip4);
		return bpf_map_lookup_elem(&ferry_pod_ips, &key);
	}
	if (remote) {
		ip6[0] = ctx->remote_ip6[0];
		ip6[1] = ctx->remote_ip6[1];
		ip6[2] = ctx->remote_ip6[2];
		ip6[3] = ctx->remote_ip6[3];
	} else {
		ip6[0] = ctx->local_ip6[0];
		ip6[1] = ctx->local_ip6[1];
		ip6[2] = ctx->local_ip6[2];
		ip6[3] = ctx->local_ip6[3];
	}
	ferry_ip_key6(&key, ip6);
	return bpf_map_lookup_elem(&ferry_pod_ips, &key);
}

/* The key kubelet.bpf.c recorded for the connection this SYN opens. */
static __always_inline void probe_key_of(struct bpf_sk_lookup *ctx, struct ferry_probe_key *key)
{
	__builtin_memset(key, 0, sizeof(*key));
	key->src_port = bpf_ntohs(ctx->remote_port);
	key->dst_port = (__u16)ctx->local_port;
	if (ctx->family == AF_INET) {
		key->family = FERRY_FAMILY_V4;
		key->src_addr[0] = ctx->remote_ip4;
		key->dst_addr[0] = ctx->local_ip4;
		return;
	}
	key->family = FERRY_FAMILY_V6;
	key->src_addr[0] = ctx->remote_ip6[0];
	key->src_addr[1] = ctx->remote_ip6[1];
	key->src_addr[2] = ctx->remote_ip6[2];
	key->src_addr[3] = ctx->remote_ip6[3];
	key->dst_addr[0] = ctx->local_ip6[0];
	key->dst_addr[1] = ctx->local_ip6[1];
	key->dst_addr[2] = ctx->local_ip6[2];
	key->dst_addr[3] = ctx->local_ip6[3];
}

/*
 * 0 for a kubelet probe to a probe port of @slot (counted as admitted); -ENOENT when
 * the connection is not the kubelet's; -EPERM for the kubelet's to another port,
 * -ETIMEDOUT for a record past its freshness bound (both counted).
 */
static __always_inline int kubelet_probe(struct bpf_sk_lookup *ctx, __u32 slot)
{
	struct ferry_probe_port_key port = {
		.slot = slot,
		.port = (__u16)ctx->local_port,
	};
	struct ferry_probe_stats *stats;
	struct ferry_probe_conn *conn;
	struct ferry_probe_key key;
	int err = 0;

	probe_key_of(ctx, &key);
	conn = bpf_map_lookup_elem(&ferry_probe_conns, &key);
	if (!conn)
		return -ENOENT;
	if (bpf_ktime_get_ns() - conn->connected_ns > ferry_probe_fresh_ns)
		err = -ETIMEDOUT;
	else if (!bpf_map_lookup_elem(&ferry_probe_ports, &port))
		err = -EPERM;
	stats = bpf_map_lookup_elem(&ferry_probe_stats, &slot);
	if (stats) {
		if (err == -ETIMEDOUT)
			__sync_fetch_and_add(&stats->expired, 1);
		else if (err == -EPERM)
			__sync_fetch_and_add(&stats->not_probe_port, 1);
		else
			__sync_fetch_and_add(&stats->admitted, 1);
	}
	return err;
}

/*
 * Assigns one of the pod's listeners, a live worker's (ferry_workers.h); -ENOENT if
 * no live worker has one (agent down, or none live), other -errno if unusable.
 */
static __always_inline int assign_listener(struct bpf_sk_lookup *ctx, __u32 slot)
{
	__u32 base = slot * FERRY_MAX_WORKERS * 2 + (ctx->family == AF_INET6 ? 1 : 0);
	__u32 zero = 0, *live;

	live = bpf_map_lookup_elem(&ferry_workers, &zero);
	if (!live)
		return -ENOENT;
	return ferry_assign_worker(ctx, &ferry_inbound, base, 2, *live, ferry_inbound_port, ferry_flow_hash(ctx));
}

/* Returns 0 to let the lookup go on, -ECONNREFUSED to drop the SYN. */
static __always_inline int steer_inbound(struct bpf_sk_lookup *ctx)
{
	struct ferry_pod *pod, *src;
	__u32 flags;
	int err;

	if (ctx->protocol != IPPROTO_TCP || from_loopback(ctx))
		return 0;
	pod = pod_of(ctx, 0);
	if (!pod)
		return 0;
	/*
	 * From the pod's own address: the pod talking to itself, or the proxy's hop
	 * to the application made from the pod netns. Such traffic crosses lo but
	 * ingress_ifindex names the interface owning the address, not lo.
	 */
	src = pod_of(ctx, 1);
	if (src && src->slot == pod->slot)
		return 0;
	flags = pod->flags;
	if (ferry_port_excluded(pod->slot, FERRY_DIR_INBOUND, (__u16)ctx->local_port))
		return 0;
	/* Before the listener: probes reach the app while the agent is down, too. */
	if (kubelet_probe(ctx, pod->slot) == 0)
		return 0;
	err = assign_listener(ctx, pod->slot);
	/* Enrolled but no listener (agent restarting): the client's SYN retry finds the new one. */
	if (err && (flags & FERRY_POD_F_FAIL_CLOSED))
		return -ECONNREFUSED;
	return 0;
}

SEC("sk_lookup")
int ferry_sk_lookup(struct bpf_sk_lookup *ctx)
{
	return steer_inbound(ctx) == -ECONNREFUSED ? SK_DROP : SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
