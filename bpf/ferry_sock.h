/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * ferry_sock_key from a sockops or sk_msg context: both name the connection with
 * the same fields (family, local/remote address, ports), so one macro serves both.
 * Both contexts keep remote_port so that bpf_ntohl() gives the port; local_port is
 * host order already.
 */
#ifndef FERRY_SOCK_H
#define FERRY_SOCK_H

#include "ferry_addr.h"

/*
 * Reads a context field with one load at a constant offset: the verifier refuses a
 * context pointer the compiler has offset and shared between branches.
 */
#define ferry_ctx_u32(ctx, field) (*(volatile __u32 *)&(ctx)->field)

/* Fills @key from @ctx as that socket sees the connection; 0, or -EAFNOSUPPORT. */
#define ferry_sock_key_from(ctx, key) ({					\
	__u32 __fam = ferry_ctx_u32(ctx, family);				\
	__u32 __l[4], __r[4];							\
	int __rc = 0;								\
	__builtin_memset((key), 0, sizeof(*(key)));				\
	(key)->netns_cookie = bpf_get_netns_cookie(ctx);			\
	(key)->local_port = (__u16)ferry_ctx_u32(ctx, local_port);		\
	(key)->remote_port = (__u16)bpf_ntohl(ferry_ctx_u32(ctx, remote_port)); \
	if (__fam == AF_INET) {							\
		(key)->family = FERRY_FAMILY_V4;				\
		(key)->local_addr[0] = ferry_ctx_u32(ctx, local_ip4);		\
		(key)->remote_addr[0] = ferry_ctx_u32(ctx, remote_ip4);		\
	} else if (__fam == AF_INET6) {						\
		__l[0] = ferry_ctx_u32(ctx, local_ip6[0]);			\
		__l[1] = ferry_ctx_u32(ctx, local_ip6[1]);			\
		__l[2] = ferry_ctx_u32(ctx, local_ip6[2]);			\
		__l[3] = ferry_ctx_u32(ctx, local_ip6[3]);			\
		__r[0] = ferry_ctx_u32(ctx, remote_ip6[0]);			\
		__r[1] = ferry_ctx_u32(ctx, remote_ip6[1]);			\
		__r[2] = ferry_ctx_u32(ctx, remote_ip6[2]);			\
		__r[3] = ferry_ctx_u32(ctx, remote_ip6[3]);			\
		if (ferry_is_v4mapped(__l)) {					\
			(key)->family = FERRY_FAMILY_V4;			\
			(key)->local_addr[0] = __l[3];				\
			(key)->remote_addr[0] = __r[3];				\
		} else {							\
			(key)->family = FERRY_FAMILY_V6;			\
			__builtin_memcpy((key)->local_addr, __l, 16);		\
			__builtin_memcpy((key)->remote_addr, __r, 16);		\
		}								\
	} else {								\
		__rc = -EAFNOSUPPORT;						\
	}									\
	__rc;									\
})

/*
 * Publishes a socket in ferry_sock_peers under @key: its address @addr, its cookie (the
 * proof a reader checks before trusting the address) and what @st knows of it. A socket
 * without a cookie could not be checked, so it stays unpublished (and takes TCP).
 */
static __always_inline void ferry_sock_publish(const struct ferry_sock_key *key, __u64 addr, __u64 cookie,
					       struct ferry_sock_state *st)
{
	struct ferry_sock_peer peer = {
		.addr = addr,
		.cookie = cookie,
		.rcv_base = st->rcv_base,
		.flags = (st->flags & FERRY_SOCK_S_POD_END) ? FERRY_SOCK_F_POD_END : 0,
	};

	if (addr && cookie && bpf_map_update_elem(&ferry_sock_peers, key, &peer, BPF_ANY) == 0)
		st->flags |= FERRY_SOCK_S_PUBLISHED;
}

#endif /* FERRY_SOCK_H */
