//go:build ignore

// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * XDP programs for the data-plane benchmark (package bench).
 *
 *   bench_floor  swaps the MACs and transmits: the cheapest possible XDP_TX,
 *                the floor every other figure is divided by.
 *   bench_pass   returns XDP_PASS: the floor for traffic left to the kernel.
 *   bench_peer   runs on the peer of the veth the measured program transmits
 *                into. It checks each frame it receives, puts the original
 *                frame back into the buffer and drops it.
 *
 * Why the peer restores: in live-frames mode BPF_PROG_TEST_RUN takes its
 * packet buffers from a page pool and, when a transmitted frame comes back
 * to the pool, hands the same page out again with only the pointers reset.
 * A program that rewrites headers would see its own output from the second
 * use of a buffer on. The peer receives the frame in that same page (veth
 * passes XDP frames by reference), so what it writes is what the measured
 * program sees next: the original frame, with the client address of the
 * next flow when flows are to cycle.
 *
 * Self-contained on purpose: only system headers, so scripts/
 * check-generated.sh can rebuild this directory on its own.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define FRAME_MAX 128  /* largest template frame; lengths are multiples of 8 */
#define SAMPLE_MAX 256 /* the sample buffer; frames up to SAMPLE_MAX-1 bytes are copied whole */

/* The template is Ethernet + IPv4 (no options) + TCP. */
#define OFF_IP ETH_HLEN
#define OFF_IP_CSUM (OFF_IP + 10)
#define OFF_SRC (OFF_IP + 12)
#define OFF_SPORT (OFF_IP + 20)
#define OFF_TCP_CSUM (OFF_IP + 20 + 16)
#define MIN_FRAME (OFF_IP + 20 + 20)

/* What the peer expects to receive (peer_config.mode). */
#define PEER_SWAPPED 1 /* the template with its MACs swapped (bench_floor) */
#define PEER_IPIP 2    /* the template behind an outer IPv4 header (the balancer) */

struct peer_config {
	__u32 mode;        /* PEER_* */
	__u32 restore;     /* 0: drop without writing anything back (control runs) */
	__u32 frame_len;   /* template length: a multiple of 8, MIN_FRAME..FRAME_MAX */
	__u32 nflows;      /* 0: keep the template's client; else cycle over nflows addresses */
	__u32 client_base; /* first cycled client address, host order */
	__u16 port_base;   /* cycled client port, host order... */
	__u16 port_step;   /* ...plus port_step for every completed cycle */
	__u32 real_base;   /* reals are real_base .. real_base+nreals-1, host order */
	__u32 nreals;
	__u32 tmpl_client; /* the template's client address and port, as in the frame */
	__u16 tmpl_sport;
	__u8 gw_mac[ETH_ALEN]; /* where the balancer sends encapsulated frames */
	__u8 pad[4];
	__u8 tmpl[FRAME_MAX]; /* the frame as the measured program must see it */
};

struct peer_stats {
	__u64 frames;   /* frames received */
	__u64 ok;       /* ...of the expected shape (restored, dropped) */
	__u64 bad;      /* ...of another shape (left alone, passed) */
	__u64 pristine; /* ...still carrying the template's client: a buffer the
			 * kernel had just filled from the template (fresh page) */
	__u64 cursor;   /* cycling state: index of the last flow written */
	__u64 wraps;    /* cycling state: completed cycles */
};

struct sample {
	__u32 req; /* set by Go to n > 0: copy the n-th frame received from now */
	__u32 len;
	__u8 data[SAMPLE_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct peer_config);
} peer_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct peer_stats);
} peer_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sample);
} sample SEC(".maps");

SEC("xdp")
int bench_floor(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 tmp[ETH_ALEN];

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(tmp, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, tmp, ETH_ALEN);
	return XDP_TX;
}

SEC("xdp")
int bench_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

static __always_inline int mac_eq(const __u8 *a, const __u8 *b)
{
	return *(const __u32 *)a == *(const __u32 *)b &&
	       *(const __u16 *)(a + 4) == *(const __u16 *)(b + 4);
}

/* Copies the frame into the sample map when Go asked for one. */
static __always_inline void take_sample(struct xdp_md *ctx, __u64 len)
{
	__u32 zero = 0;
	struct sample *s = bpf_map_lookup_elem(&sample, &zero);

	if (!s || !s->req)
		return;
	if (--s->req) /* req counts down: copy the req-th frame from now */
		return;
	if (len > SAMPLE_MAX - 1)
		len = SAMPLE_MAX - 1;
	if (len == 0 || bpf_xdp_load_bytes(ctx, 0, s->data, len))
		return;
	s->len = len;
}

/* Returns how many bytes precede the template's position in the frame
 * (what the measured program pushed), or -1 if the frame is not what the
 * measured program should have sent. */
static __always_inline int check_frame(const struct peer_config *cfg, void *data, void *data_end)
{
	__u32 len = data_end - data;
	struct ethhdr *eth = data;

	if (cfg->mode == PEER_SWAPPED) {
		if (len != cfg->frame_len || (void *)(eth + 1) > data_end)
			return -1;
		if (!mac_eq(eth->h_dest, cfg->tmpl + ETH_ALEN) || !mac_eq(eth->h_source, cfg->tmpl))
			return -1;
		return 0;
	}
	if (cfg->mode == PEER_IPIP) {
		struct iphdr *ip = (void *)(eth + 1);

		if (len != cfg->frame_len + sizeof(*ip) || (void *)(ip + 1) > data_end)
			return -1;
		if (!mac_eq(eth->h_dest, cfg->gw_mac) || eth->h_proto != bpf_htons(ETH_P_IP))
			return -1;
		if (ip->version != 4 || ip->ihl != 5 || ip->protocol != IPPROTO_IPIP ||
		    ip->tot_len != bpf_htons(cfg->frame_len - ETH_HLEN + sizeof(*ip)))
			return -1;
		if (bpf_ntohl(ip->daddr) - cfg->real_base >= cfg->nreals)
			return -1;
		return sizeof(*ip);
	}
	return -1;
}

/* RFC 1624 eqn. 3 for one changed 16-bit word; words are taken as they lie
 * in the frame, which keeps the sum independent of byte order. */
static __always_inline __u32 csum_sub_add(__u32 sum, __u16 from, __u16 to)
{
	return sum + (__u16)~from + to;
}

static __always_inline __u16 csum_finish(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* Writes the template back at data and then the next flow's client. */
static __always_inline void restore(const struct peer_config *cfg, struct peer_stats *st,
				    void *data, void *data_end)
{
	__u32 flen = cfg->frame_len;

#pragma unroll
	for (int i = 0; i < FRAME_MAX / 8; i++) {
		__u64 *dst = data + i * 8;

		if (i * 8 >= flen || (void *)(dst + 1) > data_end)
			break;
		*dst = *(const __u64 *)(cfg->tmpl + i * 8);
	}
	if (data + MIN_FRAME > data_end)
		return;

	__u32 client = cfg->tmpl_client;
	__u16 sport = cfg->tmpl_sport;
	if (cfg->nflows) {
		__u64 c = st->cursor + 1;

		if (c >= cfg->nflows) {
			c = 0;
			st->wraps++;
		}
		st->cursor = c;
		client = bpf_htonl(cfg->client_base + (__u32)c);
		sport = bpf_htons(cfg->port_base + (__u16)(st->wraps * cfg->port_step));
	}
	__u32 old = cfg->tmpl_client;
	__u16 *ip_csum = data + OFF_IP_CSUM;
	__u16 *tcp_csum = data + OFF_TCP_CSUM;
	__u32 sum;

	*(__u32 *)(data + OFF_SRC) = client;
	*(__u16 *)(data + OFF_SPORT) = sport;
	sum = csum_sub_add((__u16)~*ip_csum, old, client);
	sum = csum_sub_add(sum, old >> 16, client >> 16);
	*ip_csum = csum_finish(sum);
	/* TCP: the address is in the pseudo-header, the port in the header. */
	sum = csum_sub_add((__u16)~*tcp_csum, old, client);
	sum = csum_sub_add(sum, old >> 16, client >> 16);
	sum = csum_sub_add(sum, cfg->tmpl_sport, sport);
	*tcp_csum = csum_finish(sum);
}

SEC("xdp")
int bench_peer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 zero = 0;
	struct peer_config *cfg = bpf_map_lookup_elem(&peer_cfg, &zero);
	struct peer_stats *st = bpf_map_lookup_elem(&peer_stats, &zero);
	int off;

	if (!cfg || !st)
		return XDP_PASS;
	st->frames++;
	take_sample(ctx, (__u64)(data_end - data));

	off = check_frame(cfg, data, data_end);
	if (off < 0 || off > 64) {
		st->bad++;
		return XDP_PASS;
	}
	st->ok++;
	if (data + off + MIN_FRAME > data_end)
		return XDP_DROP;
	if (*(__u32 *)(data + off + OFF_SRC) == cfg->tmpl_client &&
	    *(__u16 *)(data + off + OFF_SPORT) == cfg->tmpl_sport)
		st->pristine++;
	if (!cfg->restore)
		return XDP_DROP;

	/* Back to where the measured program found the frame (a no-op for
	 * the floor, called anyway so every scenario pays the same). */
	if (bpf_xdp_adjust_head(ctx, off))
		return XDP_DROP;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	restore(cfg, st, data, data_end);
	return XDP_DROP;
}
