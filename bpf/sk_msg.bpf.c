// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The plaintext hop without TCP: sk_msg on ferry_socks.
 *
 * Both ends of a pod <-> proxy hop live on this node, in one netns. When one end
 * sends, hand the bytes straight to the other end's receive queue
 * (bpf_msg_redirect_hash with BPF_F_INGRESS) instead of through TCP and lo. It is
 * still the same byte stream, so two things must hold before a message takes the
 * shortcut, or it goes by TCP as usual (SK_PASS):
 *
 *   order  everything this end ever sent by TCP has been read by the peer: our
 *          write_seq equals the peer's copied_seq. A receiver reads its redirected
 *          queue before its TCP queue, so a redirected message must never overtake
 *          TCP bytes; the reverse (TCP after redirected bytes) is read in order.
 *          This is what makes the shortcut safe from the first byte, whenever
 *          either end joins the map.
 *   room   the peer's redirected, unread bytes are below its receive buffer. A
 *          redirect is not flow-controlled by TCP's window; past the bound the
 *          message takes TCP, whose window stops a fast sender.
 *
 * The peer's state is read through its kernel address (ferry_sock_addrs), checked
 * first to still hold a socket of that netns and those ports; kernel fields are read
 * with CO-RE, relocated against the running kernel's BTF.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "ferry_sock.h"

struct net {
	__u64 net_cookie;
} __attribute__((preserve_access_index));

struct sock_common {
	__u16 skc_dport;	/* network order */
	__u16 skc_num;		/* host order */
	unsigned short skc_family;
	struct { struct net *net; } skc_net;
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	int sk_rcvbuf;
	void *sk_user_data;
} __attribute__((preserve_access_index));

struct tcp_sock {
	__u32 copied_seq;
	__u32 write_seq;
} __attribute__((preserve_access_index));

struct sk_psock {
	__u32 msg_tot_len;
} __attribute__((preserve_access_index));

/* sk_user_data carries flag bits below the psock pointer (SK_USER_DATA_PTRMASK). */
#define FERRY_SK_USER_DATA_FLAGS	7UL

/* The socket @key names, if @addr still holds it; else NULL. */
static __always_inline struct sock *peer_at(__u64 addr, const struct ferry_sock_key *key)
{
	struct sock *sk = (struct sock *)addr;
	unsigned short family = BPF_CORE_READ(sk, __sk_common.skc_family);

	if (BPF_CORE_READ(sk, __sk_common.skc_num) != key->local_port ||
	    bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport)) != key->remote_port ||
	    (family != AF_INET && family != AF_INET6) ||
	    BPF_CORE_READ(sk, __sk_common.skc_net.net, net_cookie) != key->netns_cookie)
		return NULL;
	return sk;
}

/* The room rule: @peer's redirected, unread bytes are below its receive buffer. */
static __always_inline int has_room(const struct sock *peer)
{
	struct sk_psock *psock = (void *)((unsigned long)BPF_CORE_READ(peer, sk_user_data) & ~FERRY_SK_USER_DATA_FLAGS);

	return psock && BPF_CORE_READ(psock, msg_tot_len) < (__u32)BPF_CORE_READ(peer, sk_rcvbuf);
}

/* The order rule for a hop (both ends of one connection), then the room rule. */
static __always_inline int may_redirect(struct bpf_sock *self_sk, const struct sock *peer)
{
	struct tcp_sock *self = bpf_skc_to_tcp_sock(self_sk);

	if (!self || BPF_CORE_READ(self, write_seq) != BPF_CORE_READ((struct tcp_sock *)peer, copied_seq))
		return 0;
	return has_room(peer);
}

/* @key's socket and its published record, if @ref still holds that socket; else NULL. */
static __always_inline struct sock *socket_of(const struct ferry_sock_key *key, struct ferry_sock_ref **ref)
{
	*ref = bpf_map_lookup_elem(&ferry_sock_addrs, key);
	return *ref ? peer_at((*ref)->addr, key) : NULL;
}

/*
 * Splice (same-node, app to app): this end's message may go straight to @sp->to only
 * if every byte this end ever sent by TCP (through the proxy) has been read by the
 * other app, i.e. the proxy holds none in between: bytes sent by TCP == bytes the
 * other end read by TCP, both counted from the bases sockops recorded. The proxy does
 * not join a spliced connection's hops, so nothing else moves these counts.
 */
static __always_inline int splice(struct sk_msg_md *msg, struct bpf_sock *self_sk,
				  const struct ferry_sock_key *self, struct ferry_splice *sp)
{
	struct ferry_sock_ref *self_ref, *to_ref;
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(self_sk);
	struct sock *to;
	__u32 sent, read;

	self_ref = bpf_map_lookup_elem(&ferry_sock_addrs, self);
	to = socket_of(&sp->to, &to_ref);
	if (!tp || !self_ref || !to || !self_ref->bases_known || !to_ref->bases_known)
		return SK_PASS;
	sent = BPF_CORE_READ(tp, write_seq) - self_ref->snd_base;
	read = BPF_CORE_READ((struct tcp_sock *)to, copied_seq) - to_ref->rcv_base;
	if (sent != read || !has_room(to))
		return SK_PASS;
	if (bpf_msg_redirect_hash(msg, &ferry_socks, &sp->to, BPF_F_INGRESS) == SK_PASS)
		__sync_fetch_and_add(&sp->bytes, msg->size);
	return SK_PASS;
}

SEC("sk_msg")
int ferry_sk_msg(struct sk_msg_md *msg)
{
	struct ferry_sock_key self, peer;
	struct bpf_sock *self_sk = msg->sk;
	struct ferry_sock_ref *peer_ref;
	struct ferry_splice *sp;
	struct sock *peer_sk;

	if (!self_sk || ferry_sock_key_from(msg, &self))
		return SK_PASS;
	sp = bpf_map_lookup_elem(&ferry_splice, &self);
	if (sp)
		return splice(msg, self_sk, &self, sp);
	if (!bpf_map_lookup_elem(&ferry_sock_addrs, &self))
		ferry_sock_publish(&self, self_sk, 0, 0, 0);

	peer = self;
	peer.local_port = self.remote_port;
	peer.remote_port = self.local_port;
	__builtin_memcpy(peer.local_addr, self.remote_addr, sizeof(peer.local_addr));
	__builtin_memcpy(peer.remote_addr, self.local_addr, sizeof(peer.remote_addr));
	peer_sk = socket_of(&peer, &peer_ref);
	if (!peer_sk || !may_redirect(self_sk, peer_sk))
		return SK_PASS;
	/* Gone from ferry_socks since (closing): the helper says drop; send it by TCP instead. */
	bpf_msg_redirect_hash(msg, &ferry_socks, &peer, BPF_F_INGRESS);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
