//go:build ignore

// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * vipcast's healthcheck encapsulation, at TC egress of the LB's interface.
 *
 * vipcastd checks a real by opening an ordinary socket to VIP:port with
 * SO_MARK set to the real's mark. This program finds the real for that mark
 * and puts the packet in the same tunnel the balancer would use (IPIP,
 * IPv4-in-IPv6 or IP6IP6), from the LB's own address, so a check passes
 * only if the real serves the VIP through the tunnel. The room for the
 * outer header is made with bpf_skb_adjust_room's ENCAP flags: no tunnel
 * device is needed, and checksum/GSO offload of the inner packet still works.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "vipcast.h"
#include "common.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32); /* socket mark */
	__type(value, struct hc_real);
} hc_reals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hc_config);
} hc_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hc_stats);
} hc_counters SEC(".maps");

SEC("tc")
int vipcast_hc_encap(struct __sk_buff *skb)
{
	__u32 zero = 0, mark = skb->mark;
	struct hc_stats *st = bpf_map_lookup_elem(&hc_counters, &zero);
	struct hc_config *cfg;
	struct hc_real *real;

	/* Traffic that is not ours continues to whatever program comes next
	 * (TC_ACT_UNSPEC is tcx's "next"); TC_ACT_OK would end the chain. */
	if (!st)
		return TC_ACT_UNSPEC;
	if (mark == 0) {
		st->no_mark++;
		return TC_ACT_UNSPEC;
	}
	real = bpf_map_lookup_elem(&hc_reals, &mark);
	cfg = bpf_map_lookup_elem(&hc_cfg, &zero);
	if (!real || !cfg) {
		st->unknown_mark++;
		return TC_ACT_UNSPEC;
	}

	__u16 inner_proto = skb->protocol;
	int inner_v6;
	if (inner_proto == bpf_htons(ETH_P_IP))
		inner_v6 = 0;
	else if (inner_proto == bpf_htons(ETH_P_IPV6))
		inner_v6 = 1;
	else {
		st->not_ip++;
		return TC_ACT_UNSPEC;
	}
	__u32 inner_len = skb->len - sizeof(struct ethhdr);
	int outer_v6 = real->flags & REAL_F_IPV6;
	__u64 flags = outer_v6 ? BPF_F_ADJ_ROOM_ENCAP_L3_IPV6 : BPF_F_ADJ_ROOM_ENCAP_L3_IPV4;
	int grow = outer_v6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr);

	if (bpf_skb_adjust_room(skb, grow, BPF_ADJ_ROOM_MAC, flags)) {
		st->errors++;
		return TC_ACT_SHOT;
	}

	struct ethhdr eth = {};
	__builtin_memcpy(eth.h_dest, cfg->gw_mac, ETH_ALEN);
	__builtin_memcpy(eth.h_source, cfg->local_mac, ETH_ALEN);

	if (outer_v6) {
		struct ipv6hdr ip6 = {
			.version = 6,
			.payload_len = bpf_htons(inner_len),
			.nexthdr = inner_v6 ? IPPROTO_IPV6 : IPPROTO_IPIP,
			.hop_limit = DEFAULT_TTL,
		};
		__builtin_memcpy(ip6.saddr.s6_addr32, cfg->src_v6, 16);
		__builtin_memcpy(ip6.daddr.s6_addr32, real->addr, 16);
		eth.h_proto = bpf_htons(ETH_P_IPV6);
		if (bpf_skb_store_bytes(skb, sizeof(eth), &ip6, sizeof(ip6), 0))
			goto fail;
	} else {
		struct iphdr ip = {
			.version = 4,
			.ihl = 5,
			.tot_len = bpf_htons(inner_len + sizeof(struct iphdr)),
			.ttl = DEFAULT_TTL,
			.protocol = IPPROTO_IPIP,
			.saddr = cfg->src_v4,
			.daddr = real->addr[0],
		};
		ip.check = ipv4_csum(&ip);
		eth.h_proto = bpf_htons(ETH_P_IP);
		if (bpf_skb_store_bytes(skb, sizeof(eth), &ip, sizeof(ip), 0))
			goto fail;
	}
	if (bpf_skb_store_bytes(skb, 0, &eth, sizeof(eth), 0))
		goto fail;
	/* skb->protocol (read-only here) keeps naming the inner family, which
	 * is what the ENCAP flags told the stack's offloads to expect. */
	st->encapsulated++;

	if (cfg->redirect_ifindex) {
		/* Clear the mark: the packet goes through egress once more on the
		 * target device and must not be encapsulated twice. */
		skb->mark = 0;
		return bpf_redirect(cfg->redirect_ifindex, 0);
	}
	return TC_ACT_OK;

fail:
	st->errors++;
	return TC_ACT_SHOT;
}
