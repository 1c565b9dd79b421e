/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Structs and flags shared between Ferry's eBPF programs and user space.
 *
 * TWIN: src/capture/map-layout.ts encodes and decodes these byte for byte, and
 * test/capture/map-layout.test.ts compiles this header to check sizes and offsets.
 * Change both together. Every multi-byte field is host byte order unless its name
 * ends in _be; padding is explicit so keys hash the same from BPF and user space.
 */
#ifndef FERRY_SHARED_H
#define FERRY_SHARED_H

#include <linux/types.h>

/* struct ferry_pod.flags */
#define FERRY_POD_F_FAIL_CLOSED	(1u << 0)

/* struct ferry_excl_key.dir */
#define FERRY_DIR_OUTBOUND	0
#define FERRY_DIR_INBOUND	1

/* Address families as Ferry stores them (not AF_*: v4-mapped v6 counts as 4). */
#define FERRY_FAMILY_V4		4
#define FERRY_FAMILY_V6		6

/* Sizes of the maps; user space reads them back from the map, never from here. */
#define FERRY_MAX_PODS		16384
#define FERRY_MAX_POD_IPS	(FERRY_MAX_PODS * 2)
#define FERRY_MAX_EXCL		65536
#define FERRY_MAX_PROBE_PORTS	65536
/* The kubelet's connections to pods in flight; a node runs at most a few hundred probes at once. */
#define FERRY_MAX_PROBE_CONNS	16384
#define FERRY_MAX_CONNS		131072
#define FERRY_UID_LEN		64
/* Both ends of every plaintext pod <-> proxy hop: two per hop, two hops per connection. */
#define FERRY_MAX_SOCKS		(FERRY_MAX_CONNS * 2)
/* Sources whose SYN rate on the tunnel port is tracked at once (least recently seen go first). */
#define FERRY_MAX_SYN_SOURCES	16384
/* Peer node addresses exempt from that rate (Kubernetes supports clusters of 5,000 nodes). */
#define FERRY_MAX_SYN_PEERS	16384
/*
 * Data-path workers an agent runs at most: each has its own listeners, and the live set
 * is a bitmask in one 32-bit word (bpf/ferry_workers.h). A power of two. TWIN:
 * src/capture/map-layout.ts MAX_WORKERS and src/agent/worker-count.ts MAX_WORKERS.
 */
#define FERRY_MAX_WORKERS	8

/* Value of ferry_pods (key: netns cookie) and of ferry_pod_ips. */
struct ferry_pod {
	__u32 slot;
	__u32 flags;
};

/* Key of ferry_pod_ips: a v4 address fills addr[0..3], the rest is zero. */
struct ferry_ip_key {
	__u8 family;
	__u8 pad[3];
	__u8 addr[16];
};

/* Key of ferry_excl: an excluded port of one pod in one direction. */
struct ferry_excl_key {
	__u32 slot;
	__u8 dir;
	__u8 pad;
	__u16 port;
};

/* An original destination, as the application asked for it. */
struct ferry_dst {
	__u8 family;
	__u8 pad;
	__u16 port;
	__u8 addr[16];
};

/* Key of ferry_orig_dst: what the proxy knows from an accepted socket. */
struct ferry_orig_key {
	__u64 netns_cookie;
	__u8 family;
	__u8 pad;
	__u16 port;	/* the application socket's local port */
	__u32 pad2;
};

/*
 * Key of ferry_socks: one end of a TCP connection as that end sees it. The peer's
 * key is the same with local and remote swapped; the netns cookie keeps two pods'
 * identical loopback tuples apart. Addresses are network-order words, a v4 (or
 * v4-mapped v6) address in local_addr[0] / remote_addr[0] with the rest zero.
 */
struct ferry_sock_key {
	__u64 netns_cookie;
	__u8 family;
	__u8 pad;
	__u16 local_port;
	__u16 remote_port;
	__u16 pad2;
	__u32 local_addr[4];
	__u32 remote_addr[4];
};

/* struct ferry_sock_peer.flags */
#define FERRY_SOCK_F_POD_END	(1u << 0)	/* a pod's end, published by sockops: rcv_base is known */

/*
 * Value of ferry_sock_peers (key: the socket's ferry_sock_key): where sk_msg.bpf.c finds
 * that socket's kernel state. addr is the socket's address and cookie its socket cookie
 * (unique, never reused, never 0 once given): a reader trusts addr only while the socket
 * there still carries that cookie. rcv_base: a pod's end's first receive sequence
 * number, from which the bytes it has read by TCP are counted.
 */
struct ferry_sock_peer {
	__u64 addr;
	__u64 cookie;
	__u32 rcv_base;
	__u32 flags;
};

/*
 * Value of ferry_sockmap_stats (an array of one): the messages sk_msg.bpf.c passed
 * between the ends of a hop, by direction, and those it left to TCP. Splices count
 * their bytes in ferry_splice. User space reads it at scrape time.
 */
struct ferry_sockmap_stats {
	__u64 from_pod_msgs;	/* a pod's end to the proxy's, by the shortcut */
	__u64 from_pod_bytes;
	__u64 to_pod_msgs;	/* the proxy's end to a pod's, by the shortcut */
	__u64 to_pod_bytes;
	__u64 tcp_msgs;		/* left to TCP: no published peer, or order or room not met */
};

/*
 * Value of ferry_splice (key: a pod's end of a same-node connection): the other pod's
 * end, which this end's messages may go to directly, and the bytes that did.
 */
struct ferry_splice {
	struct ferry_sock_key to;
	__u64 bytes;
};

/*
 * Key of ferry_probe_conns: a TCP connection the kubelet made to a pod, as its SYN
 * names it (src: the kubelet's end, dst: the pod's). Ports host order; addresses
 * network-order words, a v4 (or v4-mapped v6) address in [0] with the rest zero.
 */
struct ferry_probe_key {
	__u8 family;
	__u8 pad;
	__u16 src_port;
	__u16 dst_port;
	__u16 pad2;
	__u32 src_addr[4];
	__u32 dst_addr[4];
};

/* Value of ferry_probe_conns. */
struct ferry_probe_conn {
	__u64 connected_ns;	/* bpf_ktime_get_ns() when the kubelet's SYN was about to leave */
	__u64 sock_cookie;	/* the kubelet's socket: only its own close deletes the record */
};

/* Key of ferry_probe_ports: a port that one of the pod's probes names. */
struct ferry_probe_port_key {
	__u32 slot;
	__u16 port;
	__u16 pad;
};

/*
 * Value of ferry_probe_stats (an array indexed by slot): the kubelet's connections
 * sk_lookup saw for the pod, by what it did with them. Zeroed when a slot is given to
 * a pod; user space reads them at scrape time.
 */
struct ferry_probe_stats {
	__u64 admitted;		/* to a probe port: passed straight to the application */
	__u64 not_probe_port;	/* to another port: steered to the proxy like any plaintext */
	__u64 expired;		/* recorded too long ago: steered to the proxy */
};

/*
 * Value of ferry_syn_stats (an array of one): what tunnel_syn.bpf.c did with the SYNs
 * that reached the tunnel port's listeners. User space reads it at scrape time.
 */
struct ferry_syn_stats {
	__u64 admitted;		/* within their source's rate: passed on to TCP */
	__u64 dropped;		/* over their source's rate: dropped (the client retransmits) */
	__u64 untracked;	/* source not tracked (header unreadable, table busy): passed, user space judges */
	__u64 peer;		/* from a peer node's address: passed, not counted against a rate */
};

/* Key of ferry_slots: a pod uid, NUL-padded. */
struct ferry_uid_key {
	char uid[FERRY_UID_LEN];
};

#endif /* FERRY_SHARED_H */
