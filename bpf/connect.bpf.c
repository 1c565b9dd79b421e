// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Outbound capture: cgroup/connect4 and cgroup/connect6 on a pod's cgroup.
 *
 * A TCP connect() from an enrolled pod namespace to anything but loopback, the
 * pod's own addresses or an excluded port is rewritten to the agent's outbound
 * listener inside the pod's namespace. The original destination is recorded
 * under the socket cookie; sockops.bpf.c republishes it once the connection is up.
 *
 * Capture follows the cgroup, so the netns cookie check is what keeps a foreign
 * namespace's process (or a pod process that moved namespace) out of capture.
 *
 * One connect() is refused (EPERM): a pod process dialling the proxy's own
 * listeners in its namespace (outbound or inbound port, on loopback or on one of
 * the pod's addresses). Such a connection carries no original destination, and
 * relaying it would make the proxy connect to itself.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "ferry_addr.h"

/* Set by the loader (src/capture); the defaults are PORTS.outbound and PORTS.inbound. */
const volatile __u16 ferry_outbound_port = 15001;
const volatile __u16 ferry_inbound_port = 15006;

/* The proxy's listeners inside the pod namespace: never a pod's destination. */
static __always_inline int is_proxy_port(__u16 port)
{
	return port == ferry_outbound_port || port == ferry_inbound_port;
}

/* Returns the enrolled pod of the calling namespace for a TCP connect, or NULL. */
static __always_inline struct ferry_pod *capturing_pod(struct bpf_sock_addr *ctx)
{
	__u64 netns = bpf_get_netns_cookie(ctx);

	if (ctx->protocol != IPPROTO_TCP)
		return NULL;
	return bpf_map_lookup_elem(&ferry_pods, &netns);
}

/* Returns 0 if @dst should be captured for @pod, -errno why not otherwise. */
static __always_inline int check_dst(const struct ferry_pod *pod, const struct ferry_ip_key *ip, __u16 port)
{
	struct ferry_pod *owner;

	if (ferry_port_excluded(pod->slot, FERRY_DIR_OUTBOUND, port))
		return -EPERM;
	/* A pod talking to itself by its own address stays local, like loopback. */
	owner = bpf_map_lookup_elem(&ferry_pod_ips, ip);
	if (owner && owner->slot == pod->slot)
		return -EADDRINUSE;
	return 0;
}

/* Records @ip:@port as the original destination of the socket in @ctx. */
static __always_inline int record_dst(struct bpf_sock_addr *ctx, const struct ferry_ip_key *ip, __u16 port)
{
	struct ferry_dst dst = {
		.family = ip->family,
		.port = port,
	};
	__u64 cookie = bpf_get_socket_cookie(ctx);

	__builtin_memcpy(dst.addr, ip->addr, sizeof(dst.addr));
	return bpf_map_update_elem(&ferry_conn_by_cookie, &cookie, &dst, BPF_ANY);
}

static __always_inline int redirect4(struct bpf_sock_addr *ctx)
{
	__u32 addr = ctx->user_ip4;
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	struct ferry_ip_key ip;
	struct ferry_pod *pod;
	int err;

	pod = capturing_pod(ctx);
	if (!pod)
		return -ENOENT;
	if (ferry_is_loopback4(addr))
		return is_proxy_port(port) ? -EACCES : -EADDRNOTAVAIL;
	ferry_ip_key4(&ip, addr);
	err = check_dst(pod, &ip, port);
	if (err == -EADDRINUSE && is_proxy_port(port))
		return -EACCES;
	if (err)
		return err;
	err = record_dst(ctx, &ip, port);
	if (err)
		return err;
	ctx->user_ip4 = FERRY_LOOPBACK4_BE;
	ctx->user_port = bpf_htons(ferry_outbound_port);
	return 0;
}

static __always_inline int redirect6(struct bpf_sock_addr *ctx)
{
	__u32 ip6[4] = {
		ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3],
	};
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	struct ferry_ip_key ip;
	struct ferry_pod *pod;
	int mapped, err;

	pod = capturing_pod(ctx);
	if (!pod)
		return -ENOENT;
	/*
	 * A v4-mapped destination goes over IPv4: the proxy's v4 listener sees it,
	 * so it is recorded as family 4 and sent to ::ffff:127.0.0.1.
	 */
	mapped = ferry_is_v4mapped(ip6);
	if (mapped ? ferry_is_loopback4(ip6[3]) : ferry_is_loopback6(ip6))
		return is_proxy_port(port) ? -EACCES : -EADDRNOTAVAIL;
	if (mapped)
		ferry_ip_key4(&ip, ip6[3]);
	else
		ferry_ip_key6(&ip, ip6);
	err = check_dst(pod, &ip, port);
	if (err == -EADDRINUSE && is_proxy_port(port))
		return -EACCES;
	if (err)
		return err;
	err = record_dst(ctx, &ip, port);
	if (err)
		return err;
	if (mapped) {
		ctx->user_ip6[3] = FERRY_LOOPBACK4_BE;
	} else {
		ctx->user_ip6[0] = 0;
		ctx->user_ip6[1] = 0;
		ctx->user_ip6[2] = 0;
		ctx->user_ip6[3] = bpf_htonl(1);
	}
	ctx->user_port = bpf_htons(ferry_outbound_port);
	return 0;
}

/*
 * Entry points allow the connect() whatever capture decided (capture is best
 * effort, never a veto), except for the proxy's own listeners (-EACCES): 0 makes
 * the kernel fail the connect() with EPERM.
 */
SEC("cgroup/connect4")
int ferry_connect4(struct bpf_sock_addr *ctx)
{
	return redirect4(ctx) == -EACCES ? 0 : 1;
}

SEC("cgroup/connect6")
int ferry_connect6(struct bpf_sock_addr *ctx)
{
	return redirect6(ctx) == -EACCES ? 0 : 1;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
