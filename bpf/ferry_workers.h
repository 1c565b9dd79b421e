/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Choosing a data-path worker's listener for a new connection, in sk_lookup programs:
 * sk_lookup.bpf.c (a pod's inbound listeners) and tunnel_lookup.bpf.c (the node's
 * tunnel listeners).
 *
 * The agent runs up to FERRY_MAX_WORKERS workers, each with its own listening socket
 * for an address, so the sockets of one address form an SO_REUSEPORT group. Left to the
 * kernel, reuseport selection spreads connections over every socket of the group —
 * including one that a root process in the pod (or a hostNetwork process on the node)
 * bound with SO_REUSEPORT to join it. So the program chooses, among Ferry's sockets
 * only: a worker among the live workers (a bitmask user space writes: those that may
 * take new connections) by a number the caller passes — a hash of the client's address
 * and port for a pod's connections, a turn counter for the tunnel's sessions — that worker's
 * socket from a SOCKMAP only the agent writes, and bpf_sk_assign() with
 * BPF_SK_LOOKUP_F_NO_REUSEPORT, which makes the choice final: the kernel runs no
 * reuseport selection over the chosen socket's group.
 *
 * When the chosen worker's socket is missing (its listener closed, or not written yet),
 * the next live worker's is tried, in worker order, wrapping around: a SYN goes to a
 * live worker while one has a socket.
 */
#ifndef FERRY_WORKERS_H
#define FERRY_WORKERS_H

#include <linux/bpf.h>
#include <linux/errno.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "ferry_shared.h"

#ifndef AF_INET
#define AF_INET		2
#endif

#define FERRY_WORKERS_ALL	((1u << FERRY_MAX_WORKERS) - 1)

_Static_assert((FERRY_MAX_WORKERS & (FERRY_MAX_WORKERS - 1)) == 0, "FERRY_MAX_WORKERS must be a power of two");
_Static_assert(FERRY_MAX_WORKERS <= 32, "the live set is one 32-bit word");

/* murmur3's finalizer: every input bit moves about half of the output bits. */
static __always_inline __u32 ferry_fmix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* A hash of the client's address and port: a flow's SYNs (and a SYN cookie's ACK) choose alike. */
static __always_inline __u32 ferry_flow_hash(const struct bpf_sk_lookup *ctx)
{
	__u32 h;

	if (ctx->family == AF_INET) {
		h = ferry_fmix32(ctx->remote_ip4);
	} else {
		h = ferry_fmix32(ctx->remote_ip6[0]);
		h = ferry_fmix32(h ^ ctx->remote_ip6[1]);
		h = ferry_fmix32(h ^ ctx->remote_ip6[2]);
		h = ferry_fmix32(h ^ ctx->remote_ip6[3]);
	}
	return ferry_fmix32(h ^ bpf_ntohs(ctx->remote_port));
}

/* The worker @hash picks among the workers set in @live (modulo their number); -ENOENT if none. */
static __always_inline int ferry_pick_worker(__u32 live, __u32 hash)
{
	__u32 n = 0, k, w;

	for (w = 0; w < FERRY_MAX_WORKERS; w++)
		n += (live >> w) & 1;
	if (n == 0)
		return -ENOENT;
	k = hash % n;
	for (w = 0; w < FERRY_MAX_WORKERS; w++) {
		if (!((live >> w) & 1))
			continue;
		if (k == 0)
			return w;
		k--;
	}
	return -ENOENT;
}

/*
 * Assigns a live worker's listener to the lookup: the one @pick chooses among the live
 * ones (ferry_pick_worker), or the next live one that has a socket; worker w's socket is
 * at key base + w * stride of @socks (a SOCKMAP) and must be bound to @port. 0 when assigned;
 * -ENOENT when no live worker has a socket; -EBADF when the sockets there are on
 * another port; -EEXIST when another sk_lookup program of the netns chose first; other
 * -errno from bpf_sk_assign().
 */
static __always_inline int ferry_assign_worker(struct bpf_sk_lookup *ctx, void *socks, __u32 base, __u32 stride, __u32 live, __u32 port, __u32 pick)
{
	struct bpf_sock *sk;
	int first, err = -ENOENT;
	__u32 i, w, key;

	live &= FERRY_WORKERS_ALL;
	first = ferry_pick_worker(live, pick);
	if (first < 0)
		return first;
	for (i = 0; i < FERRY_MAX_WORKERS; i++) {
		w = (first + i) & (FERRY_MAX_WORKERS - 1);
		if (!((live >> w) & 1))
			continue;
		key = base + w * stride;
		sk = bpf_map_lookup_elem(socks, &key);
		if (!sk)
			continue;
		/* Only ever hand a SYN to a listener on this port, whatever sits in the map. */
		if (sk->src_port != port)
			err = -EBADF;
		else
			err = bpf_sk_assign(ctx, sk, BPF_SK_LOOKUP_F_NO_REUSEPORT);
		bpf_sk_release(sk);
		if (err == 0 || err == -EEXIST)
			return err;
	}
	return err;
}

#endif /* FERRY_WORKERS_H */
