//go:build ignore

// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * vipcast's root XDP program, for hosts where several XDP programs share
 * one interface. It tail-calls the programs in its prog array, slot 0
 * first; the first slot that holds a program decides the packet. A program
 * that wants the later slots to see a packet (a firewall that only drops
 * some sources, say) tail-calls them itself through the same, pinned array.
 * With no program in any slot, packets pass.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The array's real size is set at install time; tail calls past it fail
 * and fall through, so the loop bound only caps it. */
#define ROOT_MAX_SLOTS 32

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u32);
} root_progs SEC(".maps");

SEC("xdp")
int vipcast_root(struct xdp_md *ctx)
{
#pragma clang loop unroll(full)
	for (__u32 i = 0; i < ROOT_MAX_SLOTS; i++)
		bpf_tail_call(ctx, &root_progs, i);
	return XDP_PASS;
}
