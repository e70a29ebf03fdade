/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Types shared by vipcast's BPF programs and, through bpf2go's -type
 * generation, by the Go side (package bpf). Every struct here is part of the
 * pinned-map ABI: a change to a layout is a change of the map layout version
 * (LAYOUT_VERSION), which a restarting daemon checks before adopting pins.
 *
 * Addresses are stored as raw network-order bytes in four 32-bit words; an
 * IPv4 address occupies word 0 and the other words are zero.
 */
#ifndef VIPCAST_H
#define VIPCAST_H

#include <linux/types.h>

#define LAYOUT_VERSION 2

/* VIP flags (bit values match Katran's so fixtures and operators' habits carry over). */
#define VIP_F_NO_SRC_PORT 0x1 /* hash without the client source port */
#define VIP_F_LRU_BYPASS 0x2  /* never read or write the connection table */
#define VIP_F_DPORT_ONLY 0x8  /* hash on the destination port only */
/* Set by package lb on port-0 VIPs: any port matches, and the port is left
 * out of the hash so a client's connections to any port share a real. */
#define VIP_F_ANY_PORT 0x80000000

/* Real flags. */
#define REAL_F_IPV6 0x1 /* the real's address is IPv6: IPv6 outer header */
#define REAL_F_DOWN 0x2 /* failed health checks: connection-table hits re-pick */

/* Config flags (struct lb_config.flags). */
#define CFG_F_ICMP_TOO_BIG 0x1 /* answer oversized VIP packets with ICMP too-big */

struct vip_key {
	__u32 addr[4];
	__be16 port; /* 0: the VIP matches every port */
	__u8 proto;
	__u8 family; /* 4 or 6: keeps 1.2.3.4 apart from 102:304:: */
};

struct vip_meta {
	__u32 vip_num;   /* index into vip_stats and rings */
	__u32 flags;     /* VIP_F_* */
	__u32 ring_size; /* slots in this VIP's ring (a prime) */
	__u32 pad;
};

struct real_def {
	__u32 addr[4];
	__u32 vip_num; /* the VIP this real id belongs to: stale table entries never cross VIPs */
	__u8 flags;    /* REAL_F_* */
	__u8 pad[3];
};

struct flow_key {
	__u32 src[4];
	__u32 dst[4];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

/* An entry of the shared fallback table (an LRU hash keyed by flow_key). */
struct conn {
	__u32 real_id;
	__u32 pad;
};

/*
 * The per-CPU connection tables are set-associative caches, not hash maps:
 * an array of sets, each CONN_WAYS entries of 16 bytes (one cache line),
 * the set chosen by a hash of the flow keyed with a secret key
 * (lb_config.conn_key), the entries of a set kept in most-recently-used
 * order. A lookup reads one set; a new flow takes a free way or the least
 * recently used one and moves to the front on its next packet that is not
 * a SYN. See balancer.c (conn_*).
 *
 * An entry names its flow by the VIP's number (which fixes destination
 * address, port and protocol) and one 64-bit word: for an IPv4 client its
 * address and ports exactly; for an IPv6 client, whose address and ports do
 * not fit, a keyed 64-bit fingerprint of them.
 */
#define CONN_WAYS 4

struct conn_slot {
	__u64 flow;    /* IPv4: src[0] << 32 | sport << 16 | dport (after the
			* VIP's flags, ports as loaded); IPv6: the fingerprint */
	__u32 vip_num;
	__u32 real_id; /* 0: the slot is free */
};

struct conn_set {
	struct conn_slot slot[CONN_WAYS]; /* slot[0]: the most recently used */
};

struct lb_config {
	__u8 gw_mac[6];     /* next hop for every encapsulated frame */
	__u16 tunnel_mtu;   /* largest outer IP packet we may emit */
	__u8 v4_prefix[2];  /* outer IPv4 source: prefix.X.Y */
	__u8 pad[2];
	__u8 v6_prefix[12]; /* outer IPv6 source: prefix + 32 mixed bits */
	__u32 flags;        /* CFG_F_* */
	__u32 layout;       /* LAYOUT_VERSION of the program that owns the maps */
	__u32 conn_sets;    /* sets in each per-CPU connection table */
	__u32 conn_key[12]; /* secret key of the set index (0-5) and the IPv6
	                     * fingerprint (6-11), random per data plane */
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

/* Global counters, one set per CPU; the Go side sums them. */
struct lb_stats {
	__u64 xdp_aborted;
	__u64 xdp_drop;
	__u64 xdp_pass;
	__u64 xdp_tx;
	__u64 conn_hit;           /* per-CPU connection table hit */
	__u64 fallback_hit;       /* hit in the shared fallback table */
	__u64 conn_miss_tcp_syn;  /* miss on a TCP SYN: a new connection */
	__u64 conn_miss_tcp_other;/* miss on a non-SYN TCP segment: state lost or moved */
	__u64 conn_miss_udp;
	__u64 conn_repick_down;   /* hit on a real that went down: re-picked from the ring */
	__u64 icmp_echo_reply;
	__u64 icmp_too_big;       /* too-big / fragmentation-needed sent to a client */
	__u64 icmp_error_fwd;     /* ICMP errors about a flow steered to its real */
	__u64 drop_fragment;      /* IP fragment addressed to a VIP */
	__u64 drop_ip_options;    /* IPv4 options / IPv6 extension headers to a VIP */
	__u64 drop_malformed;     /* truncated or inconsistent packet to a VIP */
	__u64 drop_no_real;       /* VIP has an empty ring */
	__u64 drop_no_gateway;    /* gateway MAC unknown */
	__u64 drop_too_big;       /* oversized and no ICMP could be sent */
	__u64 pass_malformed;     /* malformed, not addressed to a VIP: left to the kernel */
};

/* Healthcheck encapsulation (hc_encap.c). */

struct hc_real {
	__u32 addr[4];
	__u8 flags; /* REAL_F_IPV6 */
	__u8 pad[3];
};

struct hc_config {
	__u32 src_v4;     /* outer source for IPv4 reals: the LB's own address */
	__u32 src_v6[4];  /* outer source for IPv6 reals */
	__u8 local_mac[6];
	__u8 gw_mac[6];
	__u32 redirect_ifindex; /* 0: leave the packet on this egress path */
};

struct hc_stats {
	__u64 encapsulated;
	__u64 no_mark;       /* not a health check: untouched */
	__u64 unknown_mark;  /* marked, but no real has that mark: untouched */
	__u64 not_ip;
	__u64 errors;        /* the skb could not be grown: dropped */
};

#endif
