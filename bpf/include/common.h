/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* Small helpers shared by vipcast's BPF programs. */
#ifndef VIPCAST_COMMON_H
#define VIPCAST_COMMON_H

#include <linux/types.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>

#define DEFAULT_TTL 64

/* <linux/icmp.h> drags in libc's socket headers, which do not build for the
 * BPF target; the ICMPv4 header (RFC 792) is small enough to spell out. */
struct icmphdr {
	__u8 type;
	__u8 code;
	__u16 checksum;
	union {
		struct {
			__be16 id;
			__be16 sequence;
		} echo;
		struct {
			__be16 __unused;
			__be16 mtu;
		} frag;
	} un;
};

#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_FRAG_NEEDED 4
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#define TCP_FLAG_SYN_BIT 0x02
#define TCP_FLAG_ACK_BIT 0x10
#ifndef IP_MF
#define IP_MF 0x2000
#endif
#ifndef IP_OFFSET
#define IP_OFFSET 0x1fff
#endif

/* Folds a 32-bit one's-complement sum (as returned by bpf_csum_diff) into
 * the 16-bit Internet checksum (RFC 1071). */
static __always_inline __u16 csum_fold(__s64 sum)
{
	__u64 s = (__u64)sum & 0xffffffff;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* Checksum of a 20-byte IPv4 header whose check field is zero. */
static __always_inline __u16 ipv4_csum(const struct iphdr *ip)
{
	const __u16 *w = (const __u16 *)ip;
	__u32 sum = 0;

#pragma clang loop unroll(full)
	for (int i = 0; i < (int)(sizeof(*ip) / 2); i++)
		sum += w[i];
	return csum_fold(sum);
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') for one changed 16-bit word. */
static __always_inline void csum_replace16(__u16 *csum, __u16 old, __u16 new)
{
	__u32 sum = (__u16)~*csum;

	sum += (__u16)~old;
	sum += new;
	/* A message that sums to zero needs 0xffff: with 0x0000 it would not
	 * verify. 0xffff is correct in every other case 0x0000 would be. */
	*csum = csum_fold(sum) ?: 0xffff;
}

static __always_inline int is_zero_mac(const __u8 *mac)
{
	return (mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]) == 0;
}

/*
 * Flow hash: Bob Jenkins' lookup3 (2006, public domain) hashword() over five
 * 32-bit words, seeded with HASH_SEED. Package lb carries the same function
 * in Go and a test checks that both agree; changing it moves every flow.
 */
#define HASH_SEED 0x76697063 /* "vipc" */

static __always_inline __u32 rol32(__u32 w, int s)
{
	return (w << s) | (w >> (32 - s));
}

#define LOOKUP3_MIX(a, b, c)                       \
	do {                                       \
		a -= c; a ^= rol32(c, 4);  c += b; \
		b -= a; b ^= rol32(a, 6);  a += c; \
		c -= b; c ^= rol32(b, 8);  b += a; \
		a -= c; a ^= rol32(c, 16); c += b; \
		b -= a; b ^= rol32(a, 19); a += c; \
		c -= b; c ^= rol32(b, 4);  b += a; \
	} while (0)

#define LOOKUP3_FINAL(a, b, c)                \
	do {                                  \
		c ^= b; c -= rol32(b, 14);    \
		a ^= c; a -= rol32(c, 11);    \
		b ^= a; b -= rol32(a, 25);    \
		c ^= b; c -= rol32(b, 16);    \
		a ^= c; a -= rol32(c, 4);     \
		b ^= a; b -= rol32(a, 14);    \
		c ^= b; c -= rol32(b, 24);    \
	} while (0)

static __always_inline __u32 hash_words(__u32 w0, __u32 w1, __u32 w2, __u32 w3, __u32 w4)
{
	__u32 a, b, c;

	a = b = c = 0xdeadbeef + (5 << 2) + HASH_SEED;
	a += w0;
	b += w1;
	c += w2;
	LOOKUP3_MIX(a, b, c);
	a += w3;
	b += w4;
	LOOKUP3_FINAL(a, b, c);
	return c;
}

#endif
