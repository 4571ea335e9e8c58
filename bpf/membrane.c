// SPDX-License-Identifier: GPL-2.0
/* Membrane's per-endpoint policy enforcement, attached with tc to each endpoint's host-side veth:
 *   from_container: tc ingress of the host veth = packets the endpoint sends (its egress policy);
 *   to_container:   tc egress of the host veth  = packets delivered to the endpoint (its ingress policy).
 *
 * The first packet of a connection is looked up in the policy map; if allowed, a conntrack entry records the
 * verdict with the endpoint's policy revision and the ipcache revision. Later packets, both ways, pass on
 * that entry while both revisions are unchanged; after any change their next packet is checked against
 * the policy again (a reply as the connection it belongs to), so a policy change applies to established
 * connections on their next packet. Replies pass only on an entry this endpoint's policy allowed.
 * Anything unknown fails closed, with a reason.
 */
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include "membrane.h"

char LICENSE[] SEC("license") = "GPL";

/* The template of the per-endpoint policy maps (sizes rather than BTF types: clang emits the key and
 * value structs only as forward declarations here, and the kernel needs no BTF for an LPM trie). */
struct policy_map {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, POLICY_MAP_SIZE);
	__uint(key_size, sizeof(struct policy_key));
	__uint(value_size, sizeof(struct policy_value));
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, MAX_ENDPOINTS);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct policy_map);
} policy_maps SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, IPCACHE_SIZE);
	__type(key, struct ipcache_key);
	__type(value, struct ipcache_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ipcache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_ENDPOINTS);
	__type(key, __u32);
	__type(value, struct endpoint_info);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, REVISION_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} revisions SEC(".maps");

/* One LRU list shared by all CPUs. BPF_F_NO_COMMON_LRU (a list per CPU) measured no faster here, and it
 * splits the capacity: a CPU evicts from its own max_entries / possible CPUs even while the others' lists
 * are empty (new connections land mostly on one CPU), which evicts established connections early. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, CT_SIZE);
	__type(key, struct ct_key);
	__type(value, struct ct_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} conntrack_v2 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, EVENTS_SIZE);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} events SEC(".maps");

/* The first bytes of ICMP and ICMPv6 headers (linux/icmp.h drags in libc headers). */
struct icmp_echo_hdr {
	__u8 type;
	__u8 code;
	__be16 checksum;
	__be16 id;
	__be16 sequence;
};

#define ICMP_ECHOREPLY        0
#define ICMP_ECHO             8
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY   129

/* The parsed flow of one packet. */
struct flow {
	__u8  saddr[16];
	__u8  daddr[16];
	__be16 sport;
	__be16 dport;      /* for policy: the destination port, or the ICMP type */
	__be16 ct_sport;   /* for conntrack (ICMP echo: the identifier, see parse) */
	__be16 ct_dport;
	__u8  protocol;
	__u8  tcp_flags;
	__u8  is_icmp_echo; /* FLOW_ECHO_REQUEST or FLOW_ECHO_REPLY */
};

#define FLOW_ECHO_REQUEST 1
#define FLOW_ECHO_REPLY   2

static __always_inline void count(__u32 direction, __u32 reason)
{
	__u32 slot = (direction & 1) * 256 + (reason & 0xff);
	__u64 *c = bpf_map_lookup_elem(&counters, &slot);
	if (c)
		*c += 1;
}

static __always_inline void map_v4(__u8 *out, __be32 addr)
{
	__builtin_memset(out, 0, 10);
	out[10] = 0xff;
	out[11] = 0xff;
	__builtin_memcpy(out + 12, &addr, 4);
}

/* Parses Ethernet + IPv4/IPv6 + TCP/UDP/SCTP/ICMP. Returns 1 for an IP packet, 0 for non-IP (ARP), -1 when
 * the packet is truncated or malformed. */
static __always_inline int parse(struct __sk_buff *skb, struct flow *f)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return -1;
	void *l4;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return -1;
		map_v4(f->saddr, ip->saddr);
		map_v4(f->daddr, ip->daddr);
		f->protocol = ip->protocol;
		if (ip->frag_off & bpf_htons(0x1fff))   /* a later fragment: no L4 header */
			return 1;
		l4 = (void *)ip + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return -1;
		__builtin_memcpy(f->saddr, &ip6->saddr, 16);
		__builtin_memcpy(f->daddr, &ip6->daddr, 16);
		f->protocol = ip6->nexthdr;
		l4 = (void *)(ip6 + 1);
	} else {
		return 0;
	}
	if (f->protocol == IPPROTO_TCP) {
		struct tcphdr *t = l4;
		if ((void *)(t + 1) > end)
			return -1;
		f->sport = t->source;
		f->dport = t->dest;
		f->tcp_flags = ((__u8 *)t)[13];
	} else if (f->protocol == IPPROTO_UDP || f->protocol == IPPROTO_SCTP) {
		struct udphdr *u = l4;   /* SCTP ports sit at the same offsets */
		if ((void *)(u + 1) > end)
			return -1;
		f->sport = u->source;
		f->dport = u->dest;
	} else if (f->protocol == IPPROTO_ICMP || f->protocol == IPPROTO_ICMPV6) {
		struct icmp_echo_hdr *ic = l4;
		if ((void *)(ic + 1) > end)
			return -1;
		f->dport = bpf_htons(ic->type);
		__u8 echo_req = f->protocol == IPPROTO_ICMP ? ICMP_ECHO : ICMPV6_ECHO_REQUEST;
		__u8 echo_rep = f->protocol == IPPROTO_ICMP ? ICMP_ECHOREPLY : ICMPV6_ECHO_REPLY;
		if (ic->type == echo_req || ic->type == echo_rep) {
			f->is_icmp_echo = ic->type == echo_req ? FLOW_ECHO_REQUEST : FLOW_ECHO_REPLY;
			f->sport = ic->id;
		}
	}
	/* Conntrack ports. An echo request carries its identifier as the source "port" and an echo reply as the
	 * destination "port", so that a reply is the reverse of the request it answers, while an echo request
	 * sent the other way with the same identifier is not (it is a new flow, checked against policy). */
	f->ct_sport = f->sport;
	f->ct_dport = f->dport;
	if (f->is_icmp_echo == FLOW_ECHO_REQUEST) {
		f->ct_dport = 0;
	} else if (f->is_icmp_echo == FLOW_ECHO_REPLY) {
		f->ct_sport = 0;
		f->ct_dport = f->sport;
	}
	return 1;
}

static __always_inline __u32 lookup_identity(const __u8 *addr)
{
	struct ipcache_key k = { .prefixlen = 128 };
	__builtin_memcpy(k.addr, addr, 16);
	struct ipcache_value *v = bpf_map_lookup_elem(&ipcache, &k);
	return v ? v->identity : 2; /* reserved:world */
}

/* The same lookup as MapState.lookup in Swift: longest L4 prefix for the peer and for any peer; the
 * longer wins, the peer's on a tie. */
static __always_inline struct policy_value *policy_lookup(void *map, __u32 identity, __u8 dir, __u8 proto, __be16 dport,
							  int *any_peer)
{
	struct policy_key k = { .prefixlen = 64, .identity = identity, .direction = dir, .protocol = proto, .dport = dport };
	struct policy_value *specific = bpf_map_lookup_elem(map, &k);
	k.identity = 0;
	struct policy_value *any = bpf_map_lookup_elem(map, &k);
	*any_peer = any && (!specific || any->l4_prefixlen > specific->l4_prefixlen);
	return *any_peer ? any : specific;
}

static __always_inline int ct_alive(const struct ct_value *v, __u64 now)
{
	return now - v->last_seen_ns <= (__u64)v->lifetime_s * 1000000000ULL;
}

/* The key of the packet's connection at this endpoint, the same for both directions: local is the
 * endpoint's side (the source of what it sends, the destination of what it receives). */
static __always_inline void ct_key_of(struct ct_key *k, const struct flow *f, __u32 ep, __u8 dir)
{
	if (dir == DIR_EGRESS) {
		__builtin_memcpy(k->local_addr, f->saddr, 16);
		__builtin_memcpy(k->remote_addr, f->daddr, 16);
		k->local_port = f->ct_sport;
		k->remote_port = f->ct_dport;
	} else {
		__builtin_memcpy(k->local_addr, f->daddr, 16);
		__builtin_memcpy(k->remote_addr, f->saddr, 16);
		k->local_port = f->ct_dport;
		k->remote_port = f->ct_sport;
	}
	k->protocol = f->protocol;
	k->pad[0] = 0;
	k->pad[1] = 0;
	k->pad[2] = 0;
	k->endpoint_id = ep;
}

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

/* Keeps an entry alive for one more packet, writing only when something changes: last_seen at most every
 * CT_REFRESH_NS, and the shorter life once a FIN or RST is seen. */
static __always_inline void ct_refresh(struct ct_value *v, const struct flow *f, __u64 now)
{
	if (f->protocol == IPPROTO_TCP && (f->tcp_flags & (TCP_FIN | TCP_RST)) && !(v->flags & CT_FLAG_CLOSING)) {
		v->lifetime_s = CT_LIFETIME_CLOSING;
		v->flags |= CT_FLAG_CLOSING;
		v->last_seen_ns = now;
	} else if (now - v->last_seen_ns > CT_REFRESH_NS) {
		v->last_seen_ns = now;
	}
}

static __always_inline __u64 event_flags(void)
{
	return bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= EVENTS_WAKEUP_BYTES ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
}

static __always_inline void emit(struct __sk_buff *skb, const struct flow *f, const struct endpoint_info *ep, __u32 peer,
				 __u8 dir, __u8 type, __u8 verdict, __u16 reason, const struct policy_value *v, int any_peer)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(dir, COUNTER_EVENTS_LOST);
		return;
	}
	e->timestamp_ns = bpf_ktime_get_ns();
	e->type = type;
	e->verdict = verdict;
	e->drop_reason = reason;
	e->endpoint_id = ep ? ep->endpoint_id : 0;
	e->local_identity = ep ? ep->identity : 0;
	e->peer_identity = peer;
	e->direction = dir;
	e->protocol = f->protocol;
	e->tcp_flags = f->tcp_flags;
	e->l4_prefixlen = v ? (v->l4_prefixlen | (any_peer ? EVENT_MATCH_ANY_PEER : 0)) : 255;
	e->sport = f->sport;
	e->dport = f->dport;
	__builtin_memcpy(e->saddr, f->saddr, 16);
	__builtin_memcpy(e->daddr, f->daddr, 16);
	e->cookie = v ? v->cookie : 0;
	e->ifindex = skb->ifindex;
	bpf_ringbuf_submit(e, event_flags());
}

/* The drop reason of a policy lookup's result; 0 when it allows. */
static __always_inline __u16 deny_reason(const struct policy_value *v)
{
	if (!v)
		return DROP_POLICY_DENIED;
	if (v->flags & POLICY_FLAG_DENY)
		return DROP_POLICY_DENY;
	if (v->flags & POLICY_FLAG_REDIRECT)
		return DROP_PROXY_UNAVAILABLE;
	return 0;
}

static __always_inline __u32 ipcache_revision(void)
{
	__u32 slot = REVISION_IPCACHE;
	__u32 *r = bpf_map_lookup_elem(&revisions, &slot);
	return r ? *r : 0;
}

static __always_inline int enforce(struct __sk_buff *skb, __u8 dir)
{
	struct flow f = {};
	int parsed = parse(skb, &f);
	if (parsed == 0)
		return TC_ACT_OK;     /* ARP and other non-IP traffic */
	__u32 ifindex = skb->ifindex;
	struct endpoint_info *ep = bpf_map_lookup_elem(&endpoints, &ifindex);
	if (!ep || parsed < 0) {
		count(dir, DROP_UNKNOWN_SENDER);
		emit(skb, &f, ep, 0, dir, EVENT_DROP, VERDICT_DROPPED, DROP_UNKNOWN_SENDER, 0, 0);
		return TC_ACT_SHOT;
	}
	__u32 epid = ep->endpoint_id;
	/* Read before any policy lookup: a verdict is recorded with the revisions it was computed under. */
	__u32 policy_rev = *(volatile __u32 *)&ep->policy_revision;
	__u32 ipcache_rev = ipcache_revision();
	__u64 now = bpf_ktime_get_coarse_ns();

	/* One conntrack lookup finds the connection whichever way the packet goes. */
	struct ct_key ck;
	ct_key_of(&ck, &f, epid, dir);
	struct ct_value *cv = bpf_map_lookup_elem(&conntrack_v2, &ck);
	if (cv && ct_alive(cv, now)) {
		__u8 reply = cv->direction != dir;
		/* A SYN on a closed connection's 4-tuple opens a new connection: checked as one, below. */
		int reopened = f.protocol == IPPROTO_TCP && (cv->flags & CT_FLAG_CLOSING) &&
			       (f.tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN;
		if (!reopened) {
			if (cv->policy_revision == policy_rev && cv->ipcache_revision == ipcache_rev) {
				/* The fast path: the verdict recorded in the entry still holds. */
				ct_refresh(cv, &f, now);
				count(dir, reply ? COUNTER_REPLY : (cv->flags & CT_FLAG_AUDIT ? COUNTER_AUDIT : COUNTER_FORWARDED));
				return TC_ACT_OK;
			}
			/* The policy or the ipcache changed since the verdict: check the connection again, as it was
			 * opened (its direction; a reply's source port is the connection's destination port). */
			__u8 cdir = cv->direction;
			__be16 cport = f.dport;
			if (reply)
				cport = f.is_icmp_echo ? bpf_htons(f.protocol == IPPROTO_ICMP ? ICMP_ECHO : ICMPV6_ECHO_REQUEST) : f.sport;
			__u32 peer = lookup_identity(dir == DIR_EGRESS ? f.daddr : f.saddr);
			void *policy = bpf_map_lookup_elem(&policy_maps, &epid);
			int any_peer = 0;
			struct policy_value *v = policy ? policy_lookup(policy, peer, cdir, f.protocol, cport, &any_peer) : 0;
			__u16 reason = deny_reason(v);
			__u8 audited = 0;
			if (reason) {
				if (!(ep->flags & ENDPOINT_FLAG_AUDIT)) {
					/* Denied now: dropped, and the entry keeps its old revisions, so that every later
					 * packet is checked again (and passes again if the policy comes back). */
					count(dir, reason);
					emit(skb, &f, ep, peer, dir, EVENT_DROP, VERDICT_DROPPED, reason, v, any_peer);
					return TC_ACT_SHOT;
				}
				audited = CT_FLAG_AUDIT;
				if (!(cv->flags & CT_FLAG_AUDIT))
					emit(skb, &f, ep, peer, dir, EVENT_POLICY_VERDICT, VERDICT_AUDIT, reason, v, any_peer);
			}
			cv->flags = (cv->flags & ~CT_FLAG_AUDIT) | audited;
			cv->policy_revision = policy_rev;
			cv->ipcache_revision = ipcache_rev;
			ct_refresh(cv, &f, now);
			count(dir, reply ? COUNTER_REPLY : (audited ? COUNTER_AUDIT : COUNTER_FORWARDED));
			return TC_ACT_OK;
		}
	}

	/* A new connection, opened in the packet's direction: the policy decides. */
	__u32 peer = lookup_identity(dir == DIR_EGRESS ? f.daddr : f.saddr);
	void *policy = bpf_map_lookup_elem(&policy_maps, &epid);
	int any_peer = 0;
	struct policy_value *v = policy ? policy_lookup(policy, peer, dir, f.protocol, f.dport, &any_peer) : 0;
	__u16 reason = deny_reason(v);
	__u8 flags = 0;
	if (reason) {
		if (!(ep->flags & ENDPOINT_FLAG_AUDIT)) {
			count(dir, reason);
			emit(skb, &f, ep, peer, dir, EVENT_DROP, VERDICT_DROPPED, reason, v, any_peer);
			return TC_ACT_SHOT;
		}
		flags = CT_FLAG_AUDIT;
		count(dir, COUNTER_AUDIT);
		emit(skb, &f, ep, peer, dir, EVENT_POLICY_VERDICT, VERDICT_AUDIT, reason, v, any_peer);
	} else {
		count(dir, COUNTER_FORWARDED);
		emit(skb, &f, ep, peer, dir, EVENT_POLICY_VERDICT, VERDICT_FORWARDED, 0, v, any_peer);
	}
	struct ct_value nv = {
		.last_seen_ns = now,
		.lifetime_s = f.protocol == IPPROTO_TCP ? CT_LIFETIME_TCP : CT_LIFETIME_NONTCP,
		.policy_revision = policy_rev,
		.ipcache_revision = ipcache_rev,
		.direction = dir,
		.flags = flags,
	};
	if (f.protocol == IPPROTO_TCP && (f.tcp_flags & (TCP_FIN | TCP_RST))) {
		nv.lifetime_s = CT_LIFETIME_CLOSING;
		nv.flags |= CT_FLAG_CLOSING;
	}
	bpf_map_update_elem(&conntrack_v2, &ck, &nv, BPF_ANY);
	return TC_ACT_OK;
}

SEC("tc")
int from_container(struct __sk_buff *skb)
{
	return enforce(skb, DIR_EGRESS);
}

SEC("tc")
int to_container(struct __sk_buff *skb)
{
	return enforce(skb, DIR_INGRESS);
}
