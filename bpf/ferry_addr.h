/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Address predicates and map lookups shared by the outbound and inbound hooks.
 * Addresses arrive from the context as __u32 words in network byte order; they are
 * compared as such so no hook has to convert a whole address.
 */
#ifndef FERRY_ADDR_H
#define FERRY_ADDR_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "ferry_maps.h"

/* <sys/socket.h> is user space only; these values are ABI. */
#ifndef AF_INET
#define AF_INET		2
#endif
#ifndef AF_INET6
#define AF_INET6	10
#endif

#define FERRY_LOOPBACK4_BE	bpf_htonl(0x7f000001)
#define FERRY_V4MAPPED_BE	bpf_htonl(0x0000ffff)

static __always_inline int ferry_is_loopback4(__u32 addr_be)
{
	/* 127/8, and 0.0.0.0 which connect() also sends to the local host. */
	return (bpf_ntohl(addr_be) >> 24) == 127 || addr_be == 0;
}

static __always_inline int ferry_is_v4mapped(const __u32 ip6[4])
{
	return ip6[0] == 0 && ip6[1] == 0 && ip6[2] == FERRY_V4MAPPED_BE;
}

static __always_inline int ferry_is_loopback6(const __u32 ip6[4])
{
	/* ::1 and ::, which connect() also sends to the local host. */
	return ip6[0] == 0 && ip6[1] == 0 && ip6[2] == 0 &&
	       (ip6[3] == bpf_htonl(1) || ip6[3] == 0);
}

static __always_inline void ferry_ip_key4(struct ferry_ip_key *key, __u32 addr_be)
{
	__builtin_memset(key, 0, sizeof(*key));
	key->family = FERRY_FAMILY_V4;
	__builtin_memcpy(key->addr, &addr_be, sizeof(addr_be));
}

static __always_inline void ferry_ip_key6(struct ferry_ip_key *key, const __u32 ip6[4])
{
	__builtin_memset(key, 0, sizeof(*key));
	key->family = FERRY_FAMILY_V6;
	__builtin_memcpy(key->addr, ip6, 16);
}

/* Returns 1 if @port of @slot is excluded from capture in direction @dir. */
static __always_inline int ferry_port_excluded(__u32 slot, __u8 dir, __u16 port)
{
	struct ferry_excl_key key = {
		.slot = slot,
		.dir = dir,
		.port = port,
	};

	return bpf_map_lookup_elem(&ferry_excl, &key) != NULL;
}

#endif /* FERRY_ADDR_H */
