/* Membrane datapath: the maps and the key/value layouts shared with userspace.
 *
 * The layouts are defined once, here, and mirrored byte for byte by the Swift encoders
 * (Sources/Policy/MapState.swift: PolicyMapKey.encoded, PolicyEntry.encoded;
 *  Sources/Datapath/MapLayouts.swift for the other maps). Changing one means changing both.
 *
 * Maps are pinned by name and adopted by the next agent. A change to a pinned map's layout (key, value,
 * type, flags or size) gives it a new name (conntrack_v2) and adds the old one to BPFDatapath.obsoletePins,
 * whose pins the loader removes (carrying entries over where it can); the loader cannot adopt a pinned map
 * whose layout differs, and an agent would otherwise not start.
 */
#ifndef MEMBRANE_H
#define MEMBRANE_H

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>

#define POLICY_MAP_SIZE   16384
#define MAX_ENDPOINTS     4096
#define IPCACHE_SIZE      65536
#define CT_SIZE           65536

/* Drop reasons, with Cilium's numbers (Hubble's DropReason). */
#define DROP_POLICY_DENIED      133  /* no entry allows it: default deny */
#define DROP_UNKNOWN_SENDER     172  /* a packet from an interface that is no known endpoint */
#define DROP_PROXY_UNAVAILABLE  180  /* L7 redirect, but no proxy serves it: fail closed */
#define DROP_POLICY_DENY        181  /* an explicit deny entry matched */

/* Verdicts in events and counters. */
#define VERDICT_FORWARDED  0
#define VERDICT_DROPPED    1
#define VERDICT_AUDIT      2
#define VERDICT_REPLY      3

#define DIR_INGRESS 0
#define DIR_EGRESS  1

/* Policy map key: an LPM trie key. prefixlen = 40 + the L4 prefix length (0..24): the identity and the
 * direction always match exactly; protocol and port match up to the L4 prefix. 12 bytes. */
struct policy_key {
	__u32 prefixlen;
	__u32 identity;     /* 0 = any peer */
	__u8  direction;    /* DIR_INGRESS or DIR_EGRESS */
	__u8  protocol;     /* IANA number; 0 with an L4 prefix of 0 = any */
	__be16 dport;       /* ICMP: the type */
};

#define POLICY_FLAG_DENY     1
#define POLICY_FLAG_REDIRECT 2

/* Policy map value. l4_prefixlen repeats the key's L4 prefix length, so that the two lookups (peer and
 * any-peer) can be compared: the longer L4 prefix wins, the peer's on a tie. 12 bytes. */
struct policy_value {
	__be16 proxy_port;
	__u8  flags;
	__u8  auth_type;
	__u8  l4_prefixlen;
	__u8  pad[3];
	__u32 cookie;       /* index of the entry's attribution in userspace */
};

/* ipcache: IP prefix -> identity. IPv4 addresses are IPv4-mapped IPv6 (::ffff:a.b.c.d), prefixlen 96 + len. */
struct ipcache_key {
	__u32 prefixlen;
	__u8  addr[16];
};

struct ipcache_value {
	__u32 identity;
	__u32 flags;
};

#define ENDPOINT_FLAG_AUDIT 1

/* endpoints: host-side interface index -> the endpoint behind it. policy_revision changes whenever what the
 * endpoint's policy decides may have changed (its policy map, its identity, audit mode): conntrack entries
 * remember the revision their verdict was checked at, and a packet that finds another one is checked again. */
struct endpoint_info {
	__u32 endpoint_id;
	__u32 identity;
	__u32 flags;
	__u32 policy_revision;
};

/* revisions: a small array. REVISION_IPCACHE changes with every ipcache change (a verdict depends on the
 * peer's identity too); REVISION_COUNTER is the last revision userspace handed out, kept here so that an
 * agent restart continues the sequence instead of reusing revisions that conntrack entries still hold. */
#define REVISION_IPCACHE  0
#define REVISION_COUNTER  1
#define REVISION_SLOTS    2

/* Connection tracking, version 2 (pinned as conntrack_v2): one entry per endpoint and connection, found by
 * the packets of both directions with one lookup: the key is written from the endpoint's side (local =
 * the endpoint's address and port, remote = the peer's), and the value says who opened the connection.
 * A reply passes only against a connection that the same endpoint's policy allowed. 44 bytes. */
struct ct_key {
	__u8  local_addr[16];
	__u8  remote_addr[16];
	__be16 local_port;  /* ICMP echo: the identifier on the requester's side, 0 on the other (see parse) */
	__be16 remote_port;
	__u8  protocol;
	__u8  pad[3];
	__u32 endpoint_id;  /* at byte 40: removeEndpoint flushes by it */
};

#define CT_FLAG_CLOSING 1   /* a FIN or RST was seen */
#define CT_FLAG_AUDIT   2   /* the verdict was "deny", let through by audit mode */

/* An entry lives `lifetime_s` after its last packet (Cilium's defaults: TCP 6 h, other protocols 60 s,
 * 10 s once a FIN or RST was seen); an expired entry is ignored and replaced. last_seen_ns (the coarse
 * monotonic clock) is refreshed at most every CT_REFRESH_NS, so that established packets rarely write.
 * The verdict holds while the endpoint's policy revision and the ipcache revision are the ones recorded
 * here; any change and the next packet, either way, is checked against the policy again. 24 bytes. */
struct ct_value {
	__u64 last_seen_ns;
	__u32 lifetime_s;
	__u32 policy_revision;
	__u32 ipcache_revision;
	__u8  direction;    /* DIR_EGRESS: the endpoint opened the connection; DIR_INGRESS: the peer did */
	__u8  flags;
	__u16 pad;
};

#define CT_REFRESH_NS       1000000000ULL
#define CT_LIFETIME_TCP     21600
#define CT_LIFETIME_NONTCP  60
#define CT_LIFETIME_CLOSING 10

/* Event ring buffer records, read by the agent for flows: a policy verdict for the first packet of each
 * connection (and for the first packet after a re-check turned an allowed connection into an audited one),
 * and every drop. Events are submitted without waking the reader (BPF_RB_NO_WAKEUP) until
 * EVENTS_WAKEUP_BYTES are waiting: the reader polls with a timeout and drains what is there. */
#define EVENTS_SIZE          (1 << 22)
#define EVENTS_WAKEUP_BYTES  (EVENTS_SIZE / 8)
#define EVENT_POLICY_VERDICT 1
#define EVENT_DROP           2
#define EVENT_MATCH_ANY_PEER 0x40

struct event {
	__u64 timestamp_ns;
	__u8  type;
	__u8  verdict;
	__u16 drop_reason;
	__u32 endpoint_id;
	__u32 local_identity;
	__u32 peer_identity;
	__u8  direction;
	__u8  protocol;
	__u8  tcp_flags;
	__u8  l4_prefixlen;   /* of the matched entry, | EVENT_MATCH_ANY_PEER when it was the any-peer entry;
			       * 255 when none matched */
	__be16 sport;
	__be16 dport;
	__u8  saddr[16];
	__u8  daddr[16];
	__u32 cookie;
	__u32 ifindex;
};

/* counters: per CPU, indexed by direction * 256 + reason (reason 0 = forwarded, 1 = reply, 2 = audit,
 * 3 = events lost). */
#define COUNTER_FORWARDED 0
#define COUNTER_REPLY     1
#define COUNTER_AUDIT     2
#define COUNTER_EVENTS_LOST 3   /* the events ring buffer was full */
#define COUNTER_SLOTS     512

#endif
