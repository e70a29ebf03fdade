//go:build ignore

// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * vipcast's XDP balancer.
 *
 * For a TCP/UDP packet to a configured VIP: find the flow's real in the
 * per-CPU connection table (or pick it from the VIP's Maglev ring and
 * remember it), push an outer IPv4 or IPv6 header towards the real, rewrite
 * the Ethernet header towards the gateway and transmit. ICMP echo to a VIP
 * is answered here; ICMP errors about a VIP flow follow that flow to its
 * real; oversized packets get an ICMP too-big. Everything that is not VIP
 * traffic is passed to the kernel untouched.
 *
 * The maps below are the contract with package lb: their layouts are in
 * include/vipcast.h.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <linux/icmpv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "vipcast.h"
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Sizes below are placeholders: package lb sets every max_entries at load. */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 512);
	__type(key, struct vip_key);
	__type(value, struct vip_meta);
} vips SEC(".maps");

/* Every address that has at least one VIP service: answers "is this packet
 * for us at all?" for ICMP, fragments and packets we cannot parse. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 512);
	__type(key, struct vip_key); /* port and proto zero */
	__type(value, __u32);
} vip_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct real_def);
} reals SEC(".maps");

/* One ring per VIP, swapped whole by package lb so that no packet ever sees
 * a half-written ring. BPF_F_INNER_MAP lets rings differ in size. */
struct ring {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65537);
	/* Mmapable: package lb fills a new ring with one memory copy instead
	 * of a batch update (0.05 ms instead of 20-30 ms for 65537 slots). */
	__uint(map_flags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 512);
	__type(key, __u32);
	__array(values, struct ring);
} rings SEC(".maps");

/* The connection table: one per forwarding CPU, so CPUs never contend and
 * each table can live on its CPU's NUMA node; a CPU without a table uses the
 * shared fallback table. A table is an array of conn_set (vipcast.h), sized
 * by package lb, which sets this template's max_entries to match. Mmapable
 * only for its layout: the kernel then starts the values on a page boundary,
 * so every 64-byte set is one cache line. */
struct conn_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1000);
	__uint(map_flags, BPF_F_MMAPABLE);
	/* Sizes, not types: clang emits struct types two pointers deep as
	 * forward declarations, which loaders cannot size. */
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(struct conn_set));
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 128);
	__type(key, __u32);
	__array(values, struct conn_table);
} conn_tables SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1000);
	__type(key, struct flow_key);
	__type(value, struct conn);
} fallback_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_config);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_stats);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 512);
	__type(key, __u32);
	__type(value, struct counter);
} vip_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, struct counter);
} real_stats SEC(".maps");

/* The quoted part of an oversized packet in an ICMP too-big: the same
 * lengths Katran uses, enough for any transport header and, for IPv6, well
 * below the 1280-byte minimum MTU. Multiples of 4 for bpf_csum_diff. */
#define TOO_BIG_QUOTE_V4 84
#define TOO_BIG_QUOTE_V6 248

/* What the parser found out about a packet addressed to a VIP. */
struct packet {
	struct flow_key flow;
	__u32 ip_len;  /* length of the IP packet to encapsulate (IPv6: 40 + payload length, may exceed 16 bits) */
	__u8 tos;      /* DSCP+ECN of that packet, copied to the outer header */
	__u8 is_v6;    /* the packet (and so the VIP) is IPv6 */
	__u8 tcp_flags;
	__u8 icmp_err; /* an ICMP error steered by its quoted flow */
	__u8 src_zeroed; /* dport_only VIP: the outer source ignores the client address */
};

static __always_inline int is_vip_addr(const __u32 *addr, int is_v6)
{
	struct vip_key key = {};

	__builtin_memcpy(key.addr, addr, sizeof(key.addr));
	key.family = is_v6 ? 6 : 4;
	return bpf_map_lookup_elem(&vip_addrs, &key) != NULL;
}

/* A packet that vipcast cannot handle: drop it when it is addressed to a VIP
 * (the kernel has no socket for it; Katran drops these too), pass it when
 * it is not ours. Katran drops even the non-VIP ones, which breaks e.g.
 * fragmented traffic to the host itself. */
static __always_inline int drop_if_vip(const __u32 *dst, int is_v6, __u64 *vip_counter)
{
	if (is_vip_addr(dst, is_v6)) {
		(*vip_counter)++;
		return XDP_DROP;
	}
	return XDP_PASS;
}

static __always_inline struct vip_meta *find_vip(struct flow_key *flow, int is_v6)
{
	struct vip_key key = {};
	struct vip_meta *vip;

	__builtin_memcpy(key.addr, flow->dst, sizeof(key.addr));
	key.family = is_v6 ? 6 : 4;
	key.port = flow->dport;
	key.proto = flow->proto;
	vip = bpf_map_lookup_elem(&vips, &key);
	if (vip)
		return vip;
	key.port = 0;
	return bpf_map_lookup_elem(&vips, &key);
}

/* The hash that places a flow on the ring. It must be the same function on
 * every host so that ECMP'd LBs agree. */
static __always_inline __u32 flow_hash(const struct flow_key *f, int is_v6)
{
	__u32 ports = ((__u32)f->sport << 16) | f->dport;

	if (is_v6)
		return hash_words(f->src[0], f->src[1], f->src[2], f->src[3], ports);
	return hash_words(f->src[0], 0, 0, 0, ports);
}

/* NH, the universal hash of UMAC (Black, Halevi, Krawczyk, Krovetz,
 * Rogaway, CRYPTO 1999), over a flow's words and its VIP number under six
 * key words: words plus key words, multiplied in pairs, summed. Three
 * multiplications, where a keyed lookup3 would cost a new flow several
 * times that. Then MurmurHash3's 64-bit finaliser (Appleby, public domain):
 * a product's high bits are not uniform (small values are likelier), and a
 * bijection spreads them without adding collisions. */
static __always_inline __u64 nh_mix(const struct flow_key *f, __u32 ports, __u32 vip_num, const __u32 *k)
{
	__u64 h = (__u64)(__u32)(f->src[0] + k[0]) * (__u32)(ports + k[1]) +
		  (__u64)(__u32)(f->src[1] + k[2]) * (__u32)(f->src[2] + k[3]) +
		  (__u64)(__u32)(f->src[3] + k[4]) * (__u32)(vip_num + k[5]);

	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

/* Where a flow lives in a CPU's table: its set, and in *key the entry it is
 * known by (real_id 0). Unlike the ring's hash, which every host must
 * share, the set index is keyed with a secret random key, so that nobody can
 * work out offline which flows share a victim's set and push it out with
 * four packets (the kernel's own hash maps seed their hash for the same
 * reason). The VIP number is hashed too: the same client and ports towards
 * two VIPs are two flows. The high half of the hash is mapped onto
 * [0, sets) by multiplication instead of a division (Lemire, "A fast
 * alternative to the modulo reduction", 2016). */
static __always_inline struct conn_set *conn_place(void *table, const struct flow_key *f, int is_v6,
						   __u32 vip_num, const struct lb_config *cfg,
						   struct conn_slot *key)
{
	__u32 ports = ((__u32)f->sport << 16) | f->dport;
	__u64 h = nh_mix(f, ports, vip_num, &cfg->conn_key[0]);
	__u32 idx = ((h >> 32) * cfg->conn_sets) >> 32;

	key->flow = is_v6 ? nh_mix(f, ports, vip_num, &cfg->conn_key[6]) : ((__u64)f->src[0] << 32) | ports;
	key->vip_num = vip_num;
	key->real_id = 0;
	return bpf_map_lookup_elem(table, &idx);
}

/* Returns the way holding the flow, or CONN_WAYS. *ins is where a flow the
 * set does not hold goes: the first free way, else the last (the least
 * recently used). Entries are never deleted, so free ways are a suffix. */
static __always_inline __u32 conn_find(const struct conn_set *set, const struct conn_slot *k, __u32 *ins)
{
	*ins = CONN_WAYS - 1;
#pragma unroll
	for (__u32 i = 0; i < CONN_WAYS; i++) {
		const struct conn_slot *s = &set->slot[i];

		if (!s->real_id) {
			*ins = i;
			return CONN_WAYS;
		}
		if (s->flow == k->flow && s->vip_num == k->vip_num)
			return i;
	}
	return CONN_WAYS;
}

/* Makes way `from` the most recently used: ways 0..from-1 move down one,
 * and `s` (the flow's entry) goes in way 0. */
static __always_inline void conn_put_front(struct conn_set *set, __u32 from, const struct conn_slot *s)
{
#pragma unroll
	for (__u32 i = CONN_WAYS - 1; i > 0; i--) {
		if (i <= from)
			set->slot[i] = set->slot[i - 1];
	}
	set->slot[0] = *s;
}

/* The real the VIP's ring names for a flow (key after the VIP's flags). */
static __always_inline struct real_def *ring_pick(const struct vip_meta *vip, const struct flow_key *key,
						  int is_v6, __u32 *real_id)
{
	void *ring = bpf_map_lookup_elem(&rings, &vip->vip_num);
	__u32 *slot;

	if (!ring || vip->ring_size == 0)
		return NULL;
	/* Multiply-shift onto [0, ring_size) rather than a division (Lemire,
	 * 2016): no division on every new flow. */
	__u32 pos = ((__u64)flow_hash(key, is_v6) * vip->ring_size) >> 32;
	slot = bpf_map_lookup_elem(ring, &pos);
	if (!slot || *slot == 0)
		return NULL;
	*real_id = *slot;
	return bpf_map_lookup_elem(&reals, slot);
}

/* Finds the real for a flow: connection table first, ring on a miss. */
static __always_inline struct real_def *pick_real(struct packet *p, struct vip_meta *vip,
						  const struct lb_config *cfg, struct lb_stats *st,
						  __u32 *real_id)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct flow_key key = p->flow;
	struct conn_set *set = NULL;
	struct real_def *real = NULL;
	struct conn_slot ck = {};
	struct conn *c = NULL;
	__u32 way = CONN_WAYS, ins = CONN_WAYS - 1;
	__u32 id = 0;
	int use_fallback = 0;

	/* The hash (and the table key) ignore what the VIP says to ignore. */
	if (vip->flags & VIP_F_DPORT_ONLY) {
		__builtin_memset(key.src, 0, sizeof(key.src));
		key.sport = key.dport;
	} else {
		if (vip->flags & VIP_F_NO_SRC_PORT)
			key.sport = 0;
		if (vip->flags & VIP_F_ANY_PORT)
			key.dport = 0;
	}

	/* A SYN opens a connection: it is placed from the ring even when the
	 * table remembers its 5-tuple (an old connection's), as in Katran. */
	int syn = p->flow.proto == IPPROTO_TCP && (p->tcp_flags & (TCP_FLAG_SYN_BIT | TCP_FLAG_ACK_BIT)) == TCP_FLAG_SYN_BIT;

	if (!(vip->flags & VIP_F_LRU_BYPASS)) {
		void *table = bpf_map_lookup_elem(&conn_tables, &cpu);

		if (table)
			set = conn_place(table, &key, p->is_v6, vip->vip_num, cfg, &ck);
		/* No table for this CPU, or (never, while lb checks table sizes)
		 * a set count larger than the table: the shared table serves. */
		if (!set)
			use_fallback = 1;
	}
	/* A SYN is placed from the ring whatever the table holds; the set is
	 * then read only to place its entry. */
	if (syn)
		real = ring_pick(vip, &key, p->is_v6, &id);

	if (!(vip->flags & VIP_F_LRU_BYPASS)) {
		__u32 hit = 0;

		if (set) {
			way = conn_find(set, &ck, &ins);
			if (way < CONN_WAYS && !syn)
				hit = set->slot[way].real_id;
		} else if (use_fallback && !syn) {
			c = bpf_map_lookup_elem(&fallback_conns, &key);
			if (c)
				hit = c->real_id;
		}
		if (hit) {
			struct real_def *r = bpf_map_lookup_elem(&reals, &hit);

			if (r && r->vip_num == vip->vip_num && !(r->flags & REAL_F_DOWN)) {
				if (use_fallback) {
					st->fallback_hit++;
				} else {
					st->conn_hit++;
					if (way > 0 && way < CONN_WAYS) {
						struct conn_slot front = set->slot[way];

						conn_put_front(set, way, &front);
					}
				}
				*real_id = hit;
				return r;
			}
			st->conn_repick_down++;
		} else if (p->flow.proto == IPPROTO_TCP) {
			if (p->tcp_flags & TCP_FLAG_SYN_BIT)
				st->conn_miss_tcp_syn++;
			else
				st->conn_miss_tcp_other++;
		} else {
			st->conn_miss_udp++;
		}
	}

	if (!syn)
		real = ring_pick(vip, &key, p->is_v6, &id);
	if (!real)
		return NULL;

	if (set) {
		/* A new flow enters at the back: a free way, else over the least
		 * recently used one, and reaches the front with its next packet
		 * that is not a SYN. A flow the set holds is replaced where it is
		 * when this is a SYN (a 5-tuple reused, or a SYN sent again), and
		 * moved to the front otherwise (its real went down). So a flood of
		 * SYNs, resent or not, churns only the last way of each set, and
		 * flows that have seen a packet beyond their SYN keep the others
		 * (insertion at the LRU position: Qureshi et al., "Adaptive
		 * insertion policies for high performance caching", ISCA 2007). */
		struct conn_slot s = ck;

		s.real_id = id;
		if (way < CONN_WAYS && !syn)
			conn_put_front(set, way, &s);
		else if (way < CONN_WAYS)
			set->slot[way] = s; /* a SYN earns no promotion, resent or not */
		else
			set->slot[ins] = s;
	} else if (use_fallback && !(vip->flags & VIP_F_LRU_BYPASS)) {
		struct conn val = { .real_id = id };

		bpf_map_update_elem(&fallback_conns, &key, &val, BPF_ANY);
	}
	*real_id = id;
	return real;
}

static __always_inline void count(void *map, __u32 idx, __u64 bytes)
{
	struct counter *c = bpf_map_lookup_elem(map, &idx);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

/* Outer IPv4 source 172.16.X.Y (prefix configurable) with X and Y mixed from
 * the client address and port, so the real's NIC spreads flows over its RSS
 * queues while one flow keeps one source. The byte order of the mix is
 * Katran's, so both pick the same source for the same flow. */
static __always_inline void craft_src_v4(__u8 *out, const struct lb_config *cfg,
					 const struct packet *p)
{
	__u32 client = p->src_zeroed ? 0 : p->flow.src[0];
	const __u8 *s = (const __u8 *)&client;
	const __u8 *port = (const __u8 *)&p->flow.sport;

	out[0] = cfg->v4_prefix[0];
	out[1] = cfg->v4_prefix[1];
	out[2] = s[2] ^ port[1];
	out[3] = s[3] ^ port[0];
}

static __always_inline void craft_src_v6(__u8 *out, const struct lb_config *cfg,
					 const struct packet *p)
{
	/* The low 32 bits of the client address: word 3 for IPv6, word 0 for IPv4. */
	__u32 low = p->src_zeroed ? 0 : p->is_v6 ? p->flow.src[3] : p->flow.src[0];
	const __u8 *s = (const __u8 *)&low;
	const __u8 *port = (const __u8 *)&p->flow.sport;

	__builtin_memcpy(out, cfg->v6_prefix, 12);
	out[12] = s[0] ^ port[0];
	out[13] = s[1] ^ port[1];
	out[14] = s[2];
	out[15] = s[3];
}

/* Pushes an outer header towards the real and readdresses the frame to the
 * gateway. The source MAC is the one the frame was sent to: ours. */
static __always_inline int encapsulate(struct xdp_md *ctx, const struct lb_config *cfg,
				       const struct real_def *real, const struct packet *p)
{
	int outer_v6 = real->flags & REAL_F_IPV6;
	int grow = outer_v6 ? (int)sizeof(struct ipv6hdr) : (int)sizeof(struct iphdr);
	void *data, *data_end;
	struct ethhdr *eth, *old_eth;

	if (bpf_xdp_adjust_head(ctx, -grow))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	old_eth = data + grow;
	if ((void *)(old_eth + 1) > data_end)
		return XDP_DROP;
	/* Ethernet first: the outer IP header overwrites the old one. */
	__builtin_memcpy(eth->h_source, old_eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, cfg->gw_mac, ETH_ALEN);

	if (outer_v6) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return XDP_DROP;
		eth->h_proto = bpf_htons(ETH_P_IPV6);
		ip6->version = 6;
		ip6->priority = p->tos >> 4;
		ip6->flow_lbl[0] = (p->tos & 0xf) << 4;
		ip6->flow_lbl[1] = 0;
		ip6->flow_lbl[2] = 0;
		ip6->payload_len = bpf_htons(p->ip_len);
		ip6->nexthdr = p->is_v6 ? IPPROTO_IPV6 : IPPROTO_IPIP;
		ip6->hop_limit = DEFAULT_TTL;
		craft_src_v6(ip6->saddr.s6_addr, cfg, p);
		__builtin_memcpy(ip6->daddr.s6_addr, real->addr, 16);
	} else {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end)
			return XDP_DROP;
		eth->h_proto = bpf_htons(ETH_P_IP);
		ip->version = 4;
		ip->ihl = 5;
		ip->tos = p->tos;
		ip->tot_len = bpf_htons(p->ip_len + sizeof(struct iphdr));
		ip->id = 0;
		ip->frag_off = 0;
		ip->ttl = DEFAULT_TTL;
		ip->protocol = IPPROTO_IPIP;
		ip->check = 0;
		craft_src_v4((__u8 *)&ip->saddr, cfg, p);
		ip->daddr = real->addr[0];
		ip->check = ipv4_csum(ip);
	}
	return XDP_TX;
}

/* Answers an oversized IPv4 packet with "fragmentation needed" carrying the
 * MTU that fits through the tunnel, so the client's path MTU discovery
 * works instead of its packets vanishing. */
static __always_inline int too_big_v4(struct xdp_md *ctx, __u16 mtu)
{
	const int grow = sizeof(struct iphdr) + sizeof(struct icmphdr);
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = data + sizeof(*eth);
	__u8 client_mac[ETH_ALEN], our_mac[ETH_ALEN];
	__u32 client, vip;

	if ((void *)(ip + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(client_mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(our_mac, eth->h_dest, ETH_ALEN);
	client = ip->saddr;
	vip = ip->daddr;

	if (bpf_xdp_adjust_head(ctx, -grow))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	int keep = sizeof(struct ethhdr) + grow + TOO_BIG_QUOTE_V4;
	if (bpf_xdp_adjust_tail(ctx, keep - (int)(data_end - data)))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;

	eth = data;
	ip = data + sizeof(*eth);
	struct icmphdr *icmp = (void *)(ip + 1);
	if ((void *)icmp + sizeof(*icmp) + TOO_BIG_QUOTE_V4 > data_end)
		return XDP_DROP;

	__builtin_memcpy(eth->h_dest, client_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, our_mac, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = bpf_htons(grow + TOO_BIG_QUOTE_V4);
	ip->id = 0;
	ip->frag_off = 0;
	ip->ttl = DEFAULT_TTL;
	ip->protocol = IPPROTO_ICMP;
	ip->check = 0;
	ip->saddr = vip;
	ip->daddr = client;
	ip->check = ipv4_csum(ip);

	icmp->type = ICMP_DEST_UNREACH;
	icmp->code = ICMP_FRAG_NEEDED;
	icmp->checksum = 0;
	icmp->un.frag.__unused = 0;
	icmp->un.frag.mtu = bpf_htons(mtu);
	icmp->checksum = csum_fold(bpf_csum_diff(NULL, 0, (void *)icmp,
						 sizeof(*icmp) + TOO_BIG_QUOTE_V4, 0));
	return XDP_TX;
}

static __always_inline int too_big_v6(struct xdp_md *ctx, __u32 mtu)
{
	const int grow = sizeof(struct ipv6hdr) + sizeof(struct icmp6hdr);
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = data + sizeof(*eth);
	__u8 client_mac[ETH_ALEN], our_mac[ETH_ALEN];
	struct in6_addr client, vip;

	if ((void *)(ip6 + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(client_mac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(our_mac, eth->h_dest, ETH_ALEN);
	client = ip6->saddr;
	vip = ip6->daddr;

	if (bpf_xdp_adjust_head(ctx, -grow))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	int keep = sizeof(struct ethhdr) + grow + TOO_BIG_QUOTE_V6;
	if (bpf_xdp_adjust_tail(ctx, keep - (int)(data_end - data)))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;

	eth = data;
	ip6 = data + sizeof(*eth);
	struct icmp6hdr *icmp6 = (void *)(ip6 + 1);
	if ((void *)icmp6 + sizeof(*icmp6) + TOO_BIG_QUOTE_V6 > data_end)
		return XDP_DROP;

	__builtin_memcpy(eth->h_dest, client_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, our_mac, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IPV6);
	ip6->version = 6;
	ip6->priority = 0;
	ip6->flow_lbl[0] = 0;
	ip6->flow_lbl[1] = 0;
	ip6->flow_lbl[2] = 0;
	ip6->payload_len = bpf_htons(sizeof(*icmp6) + TOO_BIG_QUOTE_V6);
	ip6->nexthdr = IPPROTO_ICMPV6;
	ip6->hop_limit = DEFAULT_TTL;
	ip6->saddr = vip;
	ip6->daddr = client;

	icmp6->icmp6_type = ICMPV6_PKT_TOOBIG;
	icmp6->icmp6_code = 0;
	icmp6->icmp6_cksum = 0;
	icmp6->icmp6_mtu = bpf_htonl(mtu);
	/* Pseudo-header (RFC 8200 8.1): addresses, length, next header. */
	__u32 pseudo[2] = { bpf_htonl(sizeof(*icmp6) + TOO_BIG_QUOTE_V6),
			    bpf_htonl(IPPROTO_ICMPV6) };
	__s64 sum = bpf_csum_diff(NULL, 0, (void *)&ip6->saddr, 32, 0);
	sum = bpf_csum_diff(NULL, 0, pseudo, sizeof(pseudo), sum);
	sum = bpf_csum_diff(NULL, 0, (void *)icmp6, sizeof(*icmp6) + TOO_BIG_QUOTE_V6, sum);
	icmp6->icmp6_cksum = csum_fold(sum);
	return XDP_TX;
}

static __always_inline void swap_macs(struct ethhdr *eth)
{
	__u8 tmp[ETH_ALEN];

	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
}

/* Echo reply from the VIP, built in place. Only VIP addresses are answered:
 * pings to the host itself are the kernel's business. */
static __always_inline int echo_reply_v4(struct ethhdr *eth, struct iphdr *ip,
					 struct icmphdr *icmp)
{
	__u32 tmp = ip->saddr;

	swap_macs(eth);
	ip->saddr = ip->daddr;
	ip->daddr = tmp;
	ip->ttl = DEFAULT_TTL;
	ip->check = 0;
	ip->check = ipv4_csum(ip);
	/* RFC 1624 incremental update: only the type changes, 8 -> 0. */
	icmp->type = ICMP_ECHOREPLY;
	csum_replace16(&icmp->checksum, bpf_htons(ICMP_ECHO << 8), bpf_htons(ICMP_ECHOREPLY << 8));
	return XDP_TX;
}

static __always_inline int echo_reply_v6(struct ethhdr *eth, struct ipv6hdr *ip6,
					 struct icmp6hdr *icmp6)
{
	struct in6_addr tmp = ip6->saddr;

	swap_macs(eth);
	ip6->saddr = ip6->daddr;
	ip6->daddr = tmp;
	ip6->hop_limit = DEFAULT_TTL;
	/* The pseudo-header sum is symmetric in the addresses; only the type changes. */
	icmp6->icmp6_type = ICMPV6_ECHO_REPLY;
	csum_replace16(&icmp6->icmp6_cksum, bpf_htons(ICMPV6_ECHO_REQUEST << 8),
		       bpf_htons(ICMPV6_ECHO_REPLY << 8));
	return XDP_TX;
}

/* Reads the ports of an L4 header into the flow; 0 if they are not there:
 * the header must lie in the frame and within the IP packet's own length
 * (l4_len), not in the Ethernet padding after it. */
static __always_inline int read_ports(void *l4, void *data_end, __u32 l4_len, struct packet *p)
{
	if (p->flow.proto == IPPROTO_TCP) {
		struct tcphdr *tcp = l4;

		if ((void *)(tcp + 1) > data_end || l4_len < sizeof(*tcp))
			return 0;
		p->flow.sport = tcp->source;
		p->flow.dport = tcp->dest;
		p->tcp_flags = ((__u8 *)tcp)[13];
		return 1;
	}
	struct udphdr *udp = l4;

	if ((void *)(udp + 1) > data_end || l4_len < sizeof(*udp))
		return 0;
	p->flow.sport = udp->source;
	p->flow.dport = udp->dest;
	return 1;
}

/* Fills the flow from the packet an ICMP error quotes, reversed: the quoted
 * packet went from the VIP to the client, the flow is client -> VIP. */
static __always_inline int quoted_flow_v4(void *inner, void *data_end, __u32 len, struct packet *p)
{
	struct iphdr *ip = inner;

	if ((void *)(ip + 1) > data_end || ip->ihl != 5)
		return 0;
	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP)
		return 0;
	__u16 *ports = (void *)(ip + 1);
	if ((void *)(ports + 2) > data_end || len < sizeof(*ip) + 4)
		return 0;
	p->flow.proto = ip->protocol;
	p->flow.src[0] = ip->daddr;
	p->flow.dst[0] = ip->saddr;
	p->flow.sport = ports[1];
	p->flow.dport = ports[0];
	return 1;
}

static __always_inline int quoted_flow_v6(void *inner, void *data_end, __u32 len, struct packet *p)
{
	struct ipv6hdr *ip6 = inner;

	if ((void *)(ip6 + 1) > data_end)
		return 0;
	if (ip6->nexthdr != IPPROTO_TCP && ip6->nexthdr != IPPROTO_UDP)
		return 0;
	__u16 *ports = (void *)(ip6 + 1);
	if ((void *)(ports + 2) > data_end || len < sizeof(*ip6) + 4)
		return 0;
	p->flow.proto = ip6->nexthdr;
	__builtin_memcpy(p->flow.src, ip6->daddr.s6_addr32, 16);
	__builtin_memcpy(p->flow.dst, ip6->saddr.s6_addr32, 16);
	p->flow.sport = ports[1];
	p->flow.dport = ports[0];
	return 1;
}

/* The rest of the pipeline once the packet's flow is known: VIP, real,
 * size check, encapsulation, stats. */
static __always_inline int forward(struct xdp_md *ctx, struct packet *p, struct lb_stats *st)
{
	struct vip_meta *vip = find_vip(&p->flow, p->is_v6);
	struct real_def *real;
	struct lb_config *cfg;
	__u32 zero = 0, real_id = 0;

	if (!vip)
		return XDP_PASS;

	cfg = bpf_map_lookup_elem(&config, &zero);
	if (!cfg)
		return XDP_DROP;

	/* Katran's rule for dport_only VIPs, kept so both agree on the wire. */
	p->src_zeroed = !!(vip->flags & VIP_F_DPORT_ONLY);
	real = pick_real(p, vip, cfg, st, &real_id);
	if (!real) {
		st->drop_no_real++;
		return XDP_DROP;
	}

	__u32 overhead = (real->flags & REAL_F_IPV6) ? sizeof(struct ipv6hdr) : sizeof(struct iphdr);
	if (p->ip_len + overhead > cfg->tunnel_mtu) {
		/* An ICMP error is never answered with another (RFC 1122 3.2.2). */
		if (!(cfg->flags & CFG_F_ICMP_TOO_BIG) || p->icmp_err ||
		    cfg->tunnel_mtu < overhead + (p->is_v6 ? 1280 : 576)) {
			st->drop_too_big++;
			return XDP_DROP;
		}
		st->icmp_too_big++;
		if (p->is_v6)
			return too_big_v6(ctx, cfg->tunnel_mtu - overhead);
		return too_big_v4(ctx, cfg->tunnel_mtu - overhead);
	}

	if (is_zero_mac(cfg->gw_mac)) {
		st->drop_no_gateway++;
		return XDP_DROP;
	}

	count(&vip_stats, vip->vip_num, p->ip_len);
	count(&real_stats, real_id, p->ip_len);
	if (p->icmp_err)
		st->icmp_error_fwd++;
	return encapsulate(ctx, cfg, real, p);
}

static __always_inline int process_v4(struct xdp_md *ctx, struct lb_stats *st)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct packet p = {};

	if ((void *)(ip + 1) > data_end || ip->version != 4 || ip->ihl < 5) {
		st->pass_malformed++;
		return XDP_PASS;
	}
	p.flow.dst[0] = ip->daddr;
	p.flow.src[0] = ip->saddr;
	p.flow.proto = ip->protocol;
	p.tos = ip->tos;
	p.ip_len = bpf_ntohs(ip->tot_len);

	if (ip->protocol != IPPROTO_TCP && ip->protocol != IPPROTO_UDP &&
	    ip->protocol != IPPROTO_ICMP)
		return XDP_PASS;
	if (ip->frag_off & bpf_htons(IP_MF | IP_OFFSET))
		return drop_if_vip(p.flow.dst, p.is_v6, &st->drop_fragment);
	if (ip->ihl != 5)
		return drop_if_vip(p.flow.dst, p.is_v6, &st->drop_ip_options);
	if (p.ip_len < sizeof(*ip) || (void *)ip + p.ip_len > data_end)
		return drop_if_vip(p.flow.dst, p.is_v6, &st->drop_malformed);

	void *l4 = ip + 1;
	__u32 l4_len = p.ip_len - sizeof(*ip);
	if (ip->protocol == IPPROTO_ICMP) {
		struct icmphdr *icmp = l4;

		if ((void *)(icmp + 1) > data_end || l4_len < sizeof(*icmp))
			return drop_if_vip(p.flow.dst, p.is_v6, &st->drop_malformed);
		if (icmp->type == ICMP_ECHO && is_vip_addr(p.flow.dst, p.is_v6)) {
			st->icmp_echo_reply++;
			return echo_reply_v4(eth, ip, icmp);
		}
		if (icmp->type != ICMP_DEST_UNREACH && icmp->type != ICMP_TIME_EXCEEDED &&
		    icmp->type != ICMP_PARAMETERPROB)
			return XDP_PASS;
		__u32 to = p.flow.dst[0];
		if (!quoted_flow_v4(icmp + 1, data_end, l4_len - sizeof(*icmp), &p) || p.flow.dst[0] != to)
			return XDP_PASS;
		p.icmp_err = 1;
		return forward(ctx, &p, st);
	}

	if (!read_ports(l4, data_end, l4_len, &p))
		return drop_if_vip(p.flow.dst, p.is_v6, &st->drop_malformed);
	return forward(ctx, &p, st);
}

static __always_inline int same_addr(const __u32 *a, const __u32 *b)
{
	return ((a[0] ^ b[0]) | (a[1] ^ b[1]) | (a[2] ^ b[2]) | (a[3] ^ b[3])) == 0;
}

static __always_inline int is_ext_header(__u8 nh)
{
	return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_DSTOPTS ||
	       nh == IPPROTO_FRAGMENT || nh == IPPROTO_AH || nh == IPPROTO_MH;
}

static __always_inline int process_v6(struct xdp_md *ctx, struct lb_stats *st)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	struct packet p = { .is_v6 = 1 };

	if ((void *)(ip6 + 1) > data_end || ip6->version != 6) {
		st->pass_malformed++;
		return XDP_PASS;
	}
	__builtin_memcpy(p.flow.dst, ip6->daddr.s6_addr32, 16);
	__builtin_memcpy(p.flow.src, ip6->saddr.s6_addr32, 16);
	p.flow.proto = ip6->nexthdr;
	p.tos = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
	p.ip_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);

	if (ip6->nexthdr == IPPROTO_FRAGMENT)
		return drop_if_vip(p.flow.dst, p.is_v6, &st->drop_fragment);
	if (is_ext_header(ip6->nexthdr))
		return drop_if_vip(p.flow.dst, p.is_v6, &st->drop_ip_options);
	if (ip6->nexthdr != IPPROTO_TCP && ip6->nexthdr != IPPROTO_UDP &&
	    ip6->nexthdr != IPPROTO_ICMPV6)
		return XDP_PASS;
	if ((void *)ip6 + p.ip_len > data_end)
		return drop_if_vip(p.flow.dst, p.is_v6, &st->drop_malformed);

	void *l4 = ip6 + 1;
	__u32 l4_len = p.ip_len - sizeof(*ip6);
	if (ip6->nexthdr == IPPROTO_ICMPV6) {
		struct icmp6hdr *icmp6 = l4;

		if ((void *)(icmp6 + 1) > data_end || l4_len < sizeof(*icmp6))
			return drop_if_vip(p.flow.dst, p.is_v6, &st->drop_malformed);
		if (icmp6->icmp6_type == ICMPV6_ECHO_REQUEST && is_vip_addr(p.flow.dst, p.is_v6)) {
			st->icmp_echo_reply++;
			return echo_reply_v6(eth, ip6, icmp6);
		}
		if (icmp6->icmp6_type != ICMPV6_DEST_UNREACH && icmp6->icmp6_type != ICMPV6_PKT_TOOBIG &&
		    icmp6->icmp6_type != ICMPV6_TIME_EXCEED && icmp6->icmp6_type != ICMPV6_PARAMPROB)
			return XDP_PASS;
		struct flow_key to = p.flow;
		if (!quoted_flow_v6(icmp6 + 1, data_end, l4_len - sizeof(*icmp6), &p) || !same_addr(p.flow.dst, to.dst))
			return XDP_PASS;
		p.icmp_err = 1;
		return forward(ctx, &p, st);
	}

	if (!read_ports(l4, data_end, l4_len, &p))
		return drop_if_vip(p.flow.dst, p.is_v6, &st->drop_malformed);
	return forward(ctx, &p, st);
}

static __always_inline int process(struct xdp_md *ctx, struct lb_stats *st)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return process_v4(ctx, st);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return process_v6(ctx, st);
	return XDP_PASS;
}

SEC("xdp")
int vipcast_balancer(struct xdp_md *ctx)
{
	__u32 zero = 0;
	struct lb_stats *st = bpf_map_lookup_elem(&stats, &zero);

	if (!st) /* cannot happen for a one-entry array; the verifier wants the check */
		return XDP_PASS;
	int action = process(ctx, st);

	switch (action) {
	case XDP_TX:
		st->xdp_tx++;
		break;
	case XDP_DROP:
		st->xdp_drop++;
		break;
	case XDP_PASS:
		st->xdp_pass++;
		break;
	default:
		st->xdp_aborted++;
	}
	return action;
}
