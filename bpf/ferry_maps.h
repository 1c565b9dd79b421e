/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map Ferry's programs share. Each object includes this header; with
 * LIBBPF_PIN_BY_NAME and the loader's pin_root_path the first object to load
 * creates and pins a map, every later object and every restarted agent reuses it,
 * so capture state outlives the agent process.
 */
#ifndef FERRY_MAPS_H
#define FERRY_MAPS_H

#include <linux/bpf.h>
#include <linux/errno.h>
#include <bpf/bpf_helpers.h>
#include "ferry_shared.h"

/* Enrolled pods by netns cookie: outbound capture applies only to these. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FERRY_MAX_PODS);
	__type(key, __u64);
	__type(value, struct ferry_pod);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_pods SEC(".maps");

/* Enrolled pod addresses: inbound capture and the outbound "own IP" skip. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FERRY_MAX_POD_IPS);
	__type(key, struct ferry_ip_key);
	__type(value, struct ferry_pod);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_pod_ips SEC(".maps");

/* Ports a pod keeps out of capture; the value is unused (presence is the fact). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FERRY_MAX_EXCL);
	__type(key, struct ferry_excl_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_excl SEC(".maps");

/*
 * Original destination by socket cookie, written at connect(). LRU because a
 * connect() that never completes leaves its record behind; getpeername reads it
 * for the life of the connection.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FERRY_MAX_CONNS);
	__type(key, __u64);
	__type(value, struct ferry_dst);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_conn_by_cookie SEC(".maps");

/* Original destination by what the proxy sees; the proxy deletes on lookup. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FERRY_MAX_CONNS);
	__type(key, struct ferry_orig_key);
	__type(value, struct ferry_dst);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_orig_dst SEC(".maps");

/*
 * The agent's inbound listeners, one pair per pod and data-path worker, index
 * (slot * FERRY_MAX_WORKERS + worker) * 2 + (v6 ? 1 : 0). A u64 value lets user space
 * read back the socket cookie; the kernel drops an entry when its socket closes, which
 * is how "agent down" (or "worker gone") becomes visible to sk_lookup.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, FERRY_MAX_PODS * FERRY_MAX_WORKERS * 2);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_inbound SEC(".maps");

/*
 * The data-path workers that take new connections, node-wide: bit w set = worker w
 * (one entry, key 0). Written by the agent's main thread (src/capture/capture.ts
 * setLiveWorkers), read by sk_lookup.bpf.c to choose among a pod's listeners. One word,
 * so a reader never sees half of an update.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_workers SEC(".maps");

/*
 * Both ends of the plaintext hops between pods and the proxy, by ferry_sock_key:
 * sockops.bpf.c adds the pod's end, the proxy adds its own by fd. sk_msg.bpf.c,
 * attached to this map, hands a message straight to the peer end's receive queue
 * instead of through the TCP stack. The kernel drops an entry when its socket closes.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, FERRY_MAX_SOCKS);
	__type(key, struct ferry_sock_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_socks SEC(".maps");

/*
 * Where sk_msg.bpf.c finds the kernel state of each socket in ferry_socks, by the same
 * key: an sk_msg program cannot take a socket from a map lookup (that returns a
 * reference, and the program type has no bpf_sk_release), so a socket's address and
 * cookie are published here (sockops for a pod's end, sk_msg when the proxy's end first
 * sends) and read through a BTF-typed, read-only pointer (bpf_rdonly_cast) after
 * checking the cookie. LRU because the proxy's sockets leave no trace on close.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FERRY_MAX_SOCKS);
	__type(key, struct ferry_sock_key);
	__type(value, struct ferry_sock_peer);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_sock_peers SEC(".maps");

/* struct ferry_sock_state.flags */
#define FERRY_SOCK_S_POD_END	(1u << 0)	/* sockops saw this pod's end established: the bases are known */
#define FERRY_SOCK_S_PUBLISHED	(1u << 1)	/* this socket's entry in ferry_sock_peers is written */

/*
 * Per-socket state of the hops' ends, in the socket's own storage (freed with it): what
 * sockops saw at establishment and whether the socket was published. Only eBPF reads it.
 */
struct ferry_sock_state {
	__u32 snd_base;	/* a pod's end's first sequence numbers each way */
	__u32 rcv_base;
	__u32 flags;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct ferry_sock_state);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_sock_state SEC(".maps");

/* What sk_msg.bpf.c did with the hops' messages (see struct ferry_sockmap_stats). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ferry_sockmap_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_sockmap_stats SEC(".maps");

/*
 * Same-node connections spliced app to app, both directions, by the proxy once the
 * connection is authorized (src/worker/hop-shortcut.ts, spliceApps): a pod's end -> the other pod's end.
 * sk_msg.bpf.c sends a message straight to that end instead of to the proxy when no
 * byte can be overtaken; the proxy keeps relaying whatever still takes TCP, and FINs.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FERRY_MAX_CONNS);
	__type(key, struct ferry_sock_key);
	__type(value, struct ferry_splice);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_splice SEC(".maps");

/*
 * Connections the kubelet is making to enrolled pods, by tuple: written by
 * kubelet.bpf.c (on the kubelet's cgroup) just before the SYN leaves, deleted when that
 * socket closes, read by sk_lookup.bpf.c in the pod's netns. LRU so that a close the
 * program never saw (its link detached meanwhile) cannot fill the map; sk_lookup also
 * ignores records older than its freshness bound.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FERRY_MAX_PROBE_CONNS);
	__type(key, struct ferry_probe_key);
	__type(value, struct ferry_probe_conn);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_probe_conns SEC(".maps");

/* Ports a pod's probes name; the value is unused (presence is the fact). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FERRY_MAX_PROBE_PORTS);
	__type(key, struct ferry_probe_port_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_probe_ports SEC(".maps");

/* Per pod (by slot): what sk_lookup did with the kubelet's connections. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FERRY_MAX_PODS);
	__type(key, __u32);
	__type(value, struct ferry_probe_stats);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_probe_stats SEC(".maps");

/* Pod uid -> slot, only for user space: keeps slots stable across restarts. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FERRY_MAX_PODS);
	__type(key, struct ferry_uid_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_slots SEC(".maps");

#endif /* FERRY_MAPS_H */
