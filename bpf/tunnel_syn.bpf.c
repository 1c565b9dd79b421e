// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Admission on the tunnel port, in the kernel: a socket filter attached with
 * SO_ATTACH_BPF to each of the agent's listeners on 15008 (src/tunnel-syn/).
 *
 * For a TCP listener the kernel runs the filter (tcp_filter()) on every segment that
 * reaches the listener, before any socket work: SYNs, and the ACKs that complete a
 * handshake. A SYN from a source over its handshake rate is dropped here: no request
 * socket, no SYN-ACK, nothing for accept() — the agent never sees it. Nothing answers
 * it either, so the client's kernel retransmits its SYN (after 1 s, then 3 s, 7 s …)
 * instead of reconnecting at once as a reset would make it; each retransmission is
 * judged again. Every other segment passes.
 *
 * The rate is a token bucket per source — an IPv4 address, or the /64 of an IPv6 one
 * (one host usually holds a whole /64) — kept as GCRA, the generic cell rate algorithm,
 * as src/util/rate-buckets.ts does in user space: one 64-bit theoretical arrival time
 * (TAT) per source, in ns. A SYN at `now` passes when TAT - now <= tolerance ((burst - 1)
 * intervals), and moves TAT to max(TAT, now) + interval, with one compare-and-swap.
 *
 * SYNs from the addresses of peer nodes (ferry_syn_peers, kept by the agent from
 * discovery: the nodes its pods' peers run on) are not rate-limited here. A SYN does not
 * prove its source address: without the exemption, anyone able to spoof a peer node's
 * address could spend that node's bucket and hold its new tunnel sessions back. A
 * spoofed SYN can never complete a handshake, so exempting it costs at most a request
 * socket (the kernel's SYN-flood defences, SYN cookies, take it from there); what a peer's
 * address really connects is judged by the user-space gate, whose per-source rate counts
 * completed handshakes only.
 *
 * One program and one table serve every listener the agent attaches it to (one per
 * data-path worker), so the rate holds for the node. Neither map is pinned: the table
 * is soft state (a restarted agent starts with full buckets, which admits at most one
 * burst per source again) and the counters restart with the agent like its other
 * counters; nothing else reads them.
 *
 * Accepted sockets inherit their listener's filter (the kernel copies it to each
 * child), so it also runs on the segments of established tunnel sessions: the first
 * test (not a SYN) lets them through.
 *
 * Verified on this kernel (docs/tunnel.md, "Kernel facts"): the filter sees the segment
 * with skb->data at the TCP header and the IP header at BPF_HDR_START_NET; IPv4 SYNs to
 * a dual-stack [::] listener arrive with skb->protocol ETH_P_IP.
 */
#include <linux/bpf.h>
#include <linux/errno.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "ferry_shared.h"

/* Set by the loader (src/tunnel-syn/syn-filter.ts) from the tunnel's handshake limits. */
const volatile __u64 ferry_syn_interval_ns = 31250000;		/* 1 s / 32 */
const volatile __u64 ferry_syn_tolerance_ns = 127ULL * 31250000;	/* (128 - 1) intervals */

/* Offset of the flags byte in the TCP header; the flags themselves. */
#define FERRY_TCP_FLAGS_OFF	13
#define FERRY_TCP_SYN		0x02
#define FERRY_TCP_ACK		0x10

/* Compare-and-swap attempts before a contended SYN is judged over the rate. */
#define FERRY_SYN_CAS_TRIES	4

/* TAT (ns, bpf_ktime_get_ns) by source; LRU: a source unseen longest goes first. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FERRY_MAX_SYN_SOURCES);
	__type(key, struct ferry_ip_key);
	__type(value, __u64);
} ferry_syn_sources SEC(".maps");

/* Peer node addresses (whole addresses, not /64s): written by user space; presence is the fact. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FERRY_MAX_SYN_PEERS);
	__type(key, struct ferry_ip_key);
	__type(value, __u8);
} ferry_syn_peers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ferry_syn_stats);
} ferry_syn_stats SEC(".maps");

/* 1 if the segment is a SYN (not a SYN-ACK), 0 if not; -EINVAL if unreadable. */
static __always_inline int is_syn(struct __sk_buff *skb)
{
	__u8 flags;

	if (bpf_skb_load_bytes(skb, FERRY_TCP_FLAGS_OFF, &flags, sizeof(flags)))
		return -EINVAL;
	return (flags & (FERRY_TCP_SYN | FERRY_TCP_ACK)) == FERRY_TCP_SYN;
}

/*
 * The segment's source address in @addr (a peer's key: the whole address), and in @rate
 * the key its rate is kept under (an IPv4 address, or an IPv6 /64); 0 or -errno.
 */
static __always_inline int source_of(struct __sk_buff *skb, struct ferry_ip_key *addr, struct ferry_ip_key *rate)
{
	struct ipv6hdr ip6;
	struct iphdr ip;

	__builtin_memset(addr, 0, sizeof(*addr));
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes_relative(skb, 0, &ip, sizeof(ip), BPF_HDR_START_NET))
			return -EINVAL;
		addr->family = FERRY_FAMILY_V4;
		__builtin_memcpy(addr->addr, &ip.saddr, sizeof(ip.saddr));
		*rate = *addr;
		return 0;
	}
	if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		if (bpf_skb_load_bytes_relative(skb, 0, &ip6, sizeof(ip6), BPF_HDR_START_NET))
			return -EINVAL;
		addr->family = FERRY_FAMILY_V6;
		__builtin_memcpy(addr->addr, &ip6.saddr, sizeof(ip6.saddr));
		*rate = *addr;
		/* The /64: the rest of the key is zero. */
		__builtin_memset(&rate->addr[8], 0, 8);
		return 0;
	}
	return -EAFNOSUPPORT;
}

/*
 * Takes one token from @key's bucket at @now: 0, or -EBUSY when the source is over its
 * rate. A source seen for the first time starts with a full bucket; -ENOMEM when it can
 * be neither found nor added.
 */
static __always_inline int take_token(const struct ferry_ip_key *key, __u64 now)
{
	__u64 *tat, cur, base, next;
	int i;

	tat = bpf_map_lookup_elem(&ferry_syn_sources, key);
	if (!tat) {
		next = now + ferry_syn_interval_ns;
		if (!bpf_map_update_elem(&ferry_syn_sources, key, &next, BPF_NOEXIST))
			return 0;
		/* Another CPU added it meanwhile. */
		tat = bpf_map_lookup_elem(&ferry_syn_sources, key);
		if (!tat)
			return -ENOMEM;
	}
	for (i = 0; i < FERRY_SYN_CAS_TRIES; i++) {
		cur = *(volatile __u64 *)tat;
		base = cur > now ? cur : now;
		if (base - now > ferry_syn_tolerance_ns)
			return -EBUSY;
		next = base + ferry_syn_interval_ns;
		if (__sync_val_compare_and_swap(tat, cur, next) == cur)
			return 0;
	}
	return -EBUSY;
}

SEC("socket")
int ferry_tunnel_syn(struct __sk_buff *skb)
{
	struct ferry_ip_key addr, rate;
	struct ferry_syn_stats *stats;
	__u32 zero = 0;
	int err;

	if (is_syn(skb) != 1)
		return skb->len;
	stats = bpf_map_lookup_elem(&ferry_syn_stats, &zero);
	if (!stats)
		return skb->len;
	err = source_of(skb, &addr, &rate);
	if (!err && bpf_map_lookup_elem(&ferry_syn_peers, &addr)) {
		__sync_fetch_and_add(&stats->peer, 1);
		return skb->len;
	}
	if (!err)
		err = take_token(&rate, bpf_ktime_get_ns());
	if (err == -EBUSY) {
		__sync_fetch_and_add(&stats->dropped, 1);
		return 0;
	}
	if (err)
		__sync_fetch_and_add(&stats->untracked, 1);
	else
		__sync_fetch_and_add(&stats->admitted, 1);
	return skb->len;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
