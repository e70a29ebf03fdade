//go:build ignore

// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * vipcast's decapsulation program, for the reals. It takes off the outer
 * header the balancer (or the healthcheck program) put on, IPIP, IP6IP6 or
 * IPv4-in-IPv6, when the inner packet is addressed to one of the VIPs this
 * real serves, and passes the inner packet to the kernel, where the VIP
 * sits on lo. Hosts without ipip/ip6tnl devices (or that do not want them)
 * need nothing else. Everything else passes untouched.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "vipcast.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The VIPs this real serves: key as in the balancer (port and proto 0). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct vip_key);
	__type(value, __u32);
} decap_vips SEC(".maps");

struct decap_stats {
	__u64 decapsulated;
	__u64 passed;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct decap_stats);
} decap_counters SEC(".maps");

static __always_inline int serves(const void *addr, int v6)
{
	struct vip_key key = {};

	__builtin_memcpy(key.addr, addr, v6 ? 16 : 4);
	key.family = v6 ? 6 : 4;
	return bpf_map_lookup_elem(&decap_vips, &key) != NULL;
}

/* Removes `outer` bytes after the Ethernet header, which becomes `proto`. */
static __always_inline int strip(struct xdp_md *ctx, int outer, __u16 proto)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr eth;

	if (data + sizeof(eth) > data_end)
		return XDP_PASS;
	__builtin_memcpy(&eth, data, sizeof(eth));
	eth.h_proto = proto;
	if (bpf_xdp_adjust_head(ctx, outer))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + sizeof(eth) > data_end)
		return XDP_DROP;
	__builtin_memcpy(data, &eth, sizeof(eth));
	return XDP_PASS;
}

SEC("xdp")
int vipcast_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u32 zero = 0;
	struct decap_stats *st = bpf_map_lookup_elem(&decap_counters, &zero);
	int outer = 0, inner_v6 = 0;
	void *inner;

	if (!st || (void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end || ip->version != 4 || ip->ihl != 5 || ip->protocol != IPPROTO_IPIP ||
		    (ip->frag_off & bpf_htons(0x3fff)))
			goto pass;
		outer = sizeof(*ip);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end || ip6->version != 6)
			goto pass;
		if (ip6->nexthdr == IPPROTO_IPV6)
			inner_v6 = 1;
		else if (ip6->nexthdr != IPPROTO_IPIP)
			goto pass;
		outer = sizeof(*ip6);
	} else {
		goto pass;
	}

	inner = (void *)(eth + 1) + outer;
	if (inner_v6) {
		struct ipv6hdr *in6 = inner;

		if ((void *)(in6 + 1) > data_end || in6->version != 6 || !serves(&in6->daddr, 1))
			goto pass;
	} else {
		struct iphdr *in4 = inner;

		if ((void *)(in4 + 1) > data_end || in4->version != 4 || !serves(&in4->daddr, 0))
			goto pass;
	}
	st->decapsulated++;
	return strip(ctx, outer, inner_v6 ? bpf_htons(ETH_P_IPV6) : bpf_htons(ETH_P_IP));
pass:
	st->passed++;
	return XDP_PASS;
}
