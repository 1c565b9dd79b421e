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
 * The agent's inbound listeners, index slot * 2 + (v6 ? 1 : 0). A u64 value lets
 * user space read back the socket cookie; the kernel drops an entry when its
 * socket closes, which is how "agent down" becomes visible to sk_lookup.
 */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKMAP);
	__uint(max_entries, FERRY_MAX_PODS * 2);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_inbound SEC(".maps");

/* Pod uid -> slot, only for user space: keeps slots stable across restarts. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FERRY_MAX_PODS);
	__type(key, struct ferry_uid_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ferry_slots SEC(".maps");

#endif /* FERRY_MAPS_H */
