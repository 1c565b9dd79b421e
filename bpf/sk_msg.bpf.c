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
 * Where the kernel offers an interface, it is used: this end is msg->sk, typed with
 * bpf_skc_to_tcp_sock; its own state is in its socket storage (ferry_sock_state,
 * written by sockops for a pod's end); the redirect names the peer by key in
 * ferry_socks, so the kernel resolves it under its own reference. What it does not
 * offer is a way for an sk_msg program to hold the peer socket (a SOCKHASH lookup
 * returns a reference that only bpf_sk_release, absent from sk_msg, may drop). So the
 * peer's state is read through its published address (ferry_sock_peers), cast to a
 * read-only BTF-typed pointer (bpf_rdonly_cast: the verifier checks every load against
 * the running kernel's BTF and makes it fault-safe), and trusted only while the socket
 * there carries the cookie published with it — checked before and after the reads.
 * The kernel fields read are listed, with why each is safe, in docs/reliability.md
 * ("The sockmap fast path"); src/capture/sk-msg-fields.ts is their TWIN, checked
 * against the kernel's BTF before this program is attached.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include "ferry_sock.h"

/* Kernel types, reduced to the fields read; CO-RE relocates each against the running kernel. */
struct sock_common {
	struct { __s64 counter; } skc_cookie;	/* atomic64_t */
} __attribute__((preserve_access_index));

struct sock {
	struct sock_common __sk_common;
	int sk_rcvbuf;
	void *sk_user_data;
} __attribute__((preserve_access_index));

struct inet_sock {
	struct sock sk;
} __attribute__((preserve_access_index));

struct inet_connection_sock {
	struct inet_sock icsk_inet;
} __attribute__((preserve_access_index));

struct tcp_sock {
	struct inet_connection_sock inet_conn;
	__u32 copied_seq;
	__u32 write_seq;
} __attribute__((preserve_access_index));

struct sk_psock {
	__u32 msg_tot_len;
} __attribute__((preserve_access_index));

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

/*
 * sk_user_data holds a psock only with this flag set; the low bits are flags, the rest
 * the pointer (SK_USER_DATA_PSOCK and SK_USER_DATA_PTRMASK in include/net/sock.h).
 */
#define FERRY_SK_USER_DATA_PSOCK	4UL
#define FERRY_SK_USER_DATA_FLAGS	7UL

#define ferry_sk_of(tp)	(&(tp)->inet_conn.icsk_inet.sk)

/* One load, not merged with another: the cookie is read twice around the peer's fields. */
static __always_inline __u64 cookie_of(const struct tcp_sock *tp)
{
	return *(volatile __s64 *)&ferry_sk_of(tp)->__sk_common.skc_cookie.counter;
}

/* The published socket @p, as a read-only typed pointer, if it still carries its cookie; else NULL. */
static __always_inline const struct tcp_sock *peer_of(const struct ferry_sock_peer *p)
{
	const struct tcp_sock *tp = bpf_rdonly_cast((void *)p->addr, bpf_core_type_id_kernel(struct tcp_sock));

	return cookie_of(tp) == p->cookie ? tp : NULL;
}

/* The room rule: @peer's redirected, unread bytes are below its receive buffer. */
static __always_inline int has_room(const struct tcp_sock *peer)
{
	unsigned long ud = (unsigned long)ferry_sk_of(peer)->sk_user_data;
	const struct sk_psock *psock;

	if (!(ud & FERRY_SK_USER_DATA_PSOCK))
		return 0;
	psock = bpf_rdonly_cast((void *)(ud & ~FERRY_SK_USER_DATA_FLAGS), bpf_core_type_id_kernel(struct sk_psock));
	return psock->msg_tot_len < (__u32)ferry_sk_of(peer)->sk_rcvbuf;
}

static __always_inline void count(__u32 from_pod, __u32 size, int redirected)
{
	__u32 zero = 0;
	struct ferry_sockmap_stats *s = bpf_map_lookup_elem(&ferry_sockmap_stats, &zero);

	if (!s)
		return;
	if (!redirected) {
		__sync_fetch_and_add(&s->tcp_msgs, 1);
	} else if (from_pod) {
		__sync_fetch_and_add(&s->from_pod_msgs, 1);
		__sync_fetch_and_add(&s->from_pod_bytes, size);
	} else {
		__sync_fetch_and_add(&s->to_pod_msgs, 1);
		__sync_fetch_and_add(&s->to_pod_bytes, size);
	}
}

/*
 * Splice (same-node, app to app): this end's message may go straight to @sp->to only
 * if every byte this end ever sent by TCP (through the proxy) has been read by the
 * other app, i.e. the proxy holds none in between: bytes sent by TCP == bytes the
 * other end read by TCP, both counted from the bases sockops recorded. The proxy does
 * not join a spliced connection's hops, so nothing else moves these counts.
 */
static __always_inline int splice(struct sk_msg_md *msg, const struct tcp_sock *self,
				  const struct ferry_sock_state *st, struct ferry_splice *sp)
{
	struct ferry_sock_peer *p = bpf_map_lookup_elem(&ferry_sock_peers, &sp->to);
	const struct tcp_sock *to;
	__u32 sent, read;

	if (!p || !(st->flags & FERRY_SOCK_S_POD_END) || !(p->flags & FERRY_SOCK_F_POD_END))
		return SK_PASS;
	to = peer_of(p);
	if (!to)
		return SK_PASS;
	sent = self->write_seq - st->snd_base;
	read = to->copied_seq - p->rcv_base;
	if (sent != read || !has_room(to) || cookie_of(to) != p->cookie)
		return SK_PASS;
	if (bpf_msg_redirect_hash(msg, &ferry_socks, &sp->to, BPF_F_INGRESS) == SK_PASS)
		__sync_fetch_and_add(&sp->bytes, msg->size);
	return SK_PASS;
}

/* The hop: the order rule, then the room rule, on the peer @p names; 1 if the message may go to it. */
static __always_inline int may_redirect(const struct tcp_sock *self, const struct ferry_sock_peer *p)
{
	const struct tcp_sock *peer = peer_of(p);

	return peer && self->write_seq == peer->copied_seq && has_room(peer) && cookie_of(peer) == p->cookie;
}

SEC("sk_msg")
int ferry_sk_msg(struct sk_msg_md *msg)
{
	struct ferry_sock_key self, peer;
	struct bpf_sock *self_sk = msg->sk;
	struct ferry_sock_state *st;
	struct ferry_sock_peer *p;
	struct ferry_splice *sp;
	struct tcp_sock *tp;

	if (!self_sk || ferry_sock_key_from(msg, &self))
		return SK_PASS;
	tp = bpf_skc_to_tcp_sock(self_sk);
	st = bpf_sk_storage_get(&ferry_sock_state, self_sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!tp || !st)
		return SK_PASS;
	sp = bpf_map_lookup_elem(&ferry_splice, &self);
	if (sp)
		return splice(msg, tp, st, sp);
	/* The proxy's end: published when it first sends (its cookie was given when it joined). */
	if (!(st->flags & FERRY_SOCK_S_PUBLISHED))
		ferry_sock_publish(&self, (__u64)tp, cookie_of(tp), st);

	peer = self;
	peer.local_port = self.remote_port;
	peer.remote_port = self.local_port;
	__builtin_memcpy(peer.local_addr, self.remote_addr, sizeof(peer.local_addr));
	__builtin_memcpy(peer.remote_addr, self.local_addr, sizeof(peer.remote_addr));
	p = bpf_map_lookup_elem(&ferry_sock_peers, &peer);
	/* Gone from ferry_socks since (closing): the helper says drop; send it by TCP instead. */
	if (p && may_redirect(tp, p) && bpf_msg_redirect_hash(msg, &ferry_socks, &peer, BPF_F_INGRESS) == SK_PASS) {
		count(st->flags & FERRY_SOCK_S_POD_END, msg->size, 1);
		return SK_PASS;
	}
	count(0, 0, 0);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
