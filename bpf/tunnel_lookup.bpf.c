// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The tunnel port's worker choice: sk_lookup attached by src/tunnel-syn to the network
 * namespace the agent runs in (the node's), for as long as the agent's SynFilter lives.
 *
 * Each data-path worker has its own listener on [::]:<tunnel port>, bound with
 * SO_REUSEPORT so that they can share the port. A hostNetwork root process could bind
 * the port with SO_REUSEPORT too and join their group (or bind a more specific address
 * such as 0.0.0.0 or the node's IP, which the kernel's lookup prefers). So every TCP
 * lookup for the tunnel port is decided here: a live worker's listener, taken in turn
 * and assigned with BPF_SK_LOOKUP_F_NO_REUSEPORT (ferry_workers.h).
 *
 * In turn rather than by a hash of the client's address: a tunnel connection is a
 * pooled session that carries every stream between two identities for minutes, so a
 * node has few of them and a hash often puts the few on one worker (two sessions on
 * one of two workers half of the time) while the other idles. Taking turns spreads
 * sessions evenly. A SYN retransmitted may take another turn and leave a second request
 * socket behind on another listener; the handshake completes on whichever answered
 * first, the other times out. A SYN cookie's ACK is checked by whichever listener it
 * reaches (the cookie's secret is the namespace's, not the listener's). With no live listener the SYN is dropped (SK_DROP: the kernel
 * answers RST): it never falls through to the normal lookup, where another process's
 * socket could take it.
 *
 * Every other lookup of the namespace (other ports, UDP) passes at the first test: the
 * program runs for each listener lookup of the node, so that test is all it costs them.
 *
 * If two agents overlap (an upgrade), each has its own program; the kernel keeps the
 * socket the first-attached one chose (a later bpf_sk_assign without
 * BPF_SK_LOOKUP_F_REPLACE fails with -EEXIST), and a program's SK_DROP never overrides
 * another's choice. So the older agent takes new connections while it has live workers,
 * and the newer one once the older has none.
 *
 * Nothing here is pinned: the link and maps go with the agent, and so do its listeners.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include "ferry_shared.h"
#include "ferry_workers.h"

/* Set by the loader (src/tunnel-syn/steering.ts): the port the workers' listeners share. */
const volatile __u16 ferry_tunnel_port = 15008;

/* Each worker's tunnel listener, by worker id; the kernel drops an entry when its socket closes. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, FERRY_MAX_WORKERS);
	__type(key, __u32);
	__type(value, __u64);
} ferry_tunnel_socks SEC(".maps");

/* The workers that take new tunnel connections: bit w set = worker w (one entry, key 0). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} ferry_tunnel_workers SEC(".maps");

/* The turn counter (one entry, key 0): each tunnel SYN takes the next live worker. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} ferry_tunnel_turn SEC(".maps");

SEC("sk_lookup")
int ferry_tunnel_lookup(struct bpf_sk_lookup *ctx)
{
	__u32 zero = 0, *live, *turn, pick;

	if (ctx->local_port != ferry_tunnel_port || ctx->protocol != IPPROTO_TCP)
		return SK_PASS;
	live = bpf_map_lookup_elem(&ferry_tunnel_workers, &zero);
	turn = bpf_map_lookup_elem(&ferry_tunnel_turn, &zero);
	if (!live || !turn)
		return SK_DROP;
	/* Concurrent SYNs on several CPUs may read the same turn: the spread is even over time, not exact. */
	__sync_fetch_and_add(turn, 1);
	pick = *turn;
	if (ferry_assign_worker(ctx, &ferry_tunnel_socks, 0, 1, *live, ferry_tunnel_port, pick))
		return SK_DROP;
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
