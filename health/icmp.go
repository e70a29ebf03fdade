package health

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
)

// ICMP message types used by the echo check.
const (
	icmp4EchoReply   = 0
	icmp4Unreachable = 3
	icmp4Echo        = 8
	icmp6Unreachable = 1
	icmp6Echo        = 128
	icmp6EchoReply   = 129
)

// icmpProbe sends one echo request from a marked raw socket (it needs
// CAP_NET_RAW, which the daemon has anyway for BPF) and waits for the
// matching reply. A raw socket sees every ICMP message of the host, so
// replies are matched on source, identifier, sequence and payload; an ICMP
// unreachable that quotes this request fails the check at once.
func icmpProbe(t Target) probe {
	dest, mark := t.dest()
	dst := dest.Addr().Unmap()
	return func(ctx context.Context) error {
		return ping(ctx, dst, mark)
	}
}

func ping(ctx context.Context, dst netip.Addr, mark uint32) error {
	network, laddr, echo := "ip4:icmp", "0.0.0.0", byte(icmp4Echo)
	if dst.Is6() {
		network, laddr, echo = "ip6:ipv6-icmp", "::", icmp6Echo
	}
	lc := net.ListenConfig{Control: markControl(mark)}
	pc, err := lc.ListenPacket(ctx, network, laddr)
	if err != nil {
		return fmt.Errorf("icmp socket for %s: %w", dst, err)
	}
	defer pc.Close()
	stop := bindToContext(ctx, pc)
	defer stop()

	id, seq := uint16(rand.Uint32()), uint16(rand.Uint32())
	req := make([]byte, 8, 8+16)
	req[0] = echo
	binary.BigEndian.PutUint16(req[4:], id)
	binary.BigEndian.PutUint16(req[6:], seq)
	req = append(req, "vipcast!"...)
	req = binary.BigEndian.AppendUint64(req, rand.Uint64())
	if dst.Is4() {
		// The kernel fills in the ICMPv6 checksum (it covers a pseudo
		// header), not the ICMPv4 one.
		binary.BigEndian.PutUint16(req[2:], checksum(req))
	}
	if _, err := pc.WriteTo(req, &net.IPAddr{IP: dst.AsSlice()}); err != nil {
		return fmt.Errorf("icmp echo to %s: %w", dst, err)
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if timedOut(ctx, err) {
				return fmt.Errorf("icmp echo to %s: no reply before the timeout", dst)
			}
			return fmt.Errorf("icmp echo to %s: %w", dst, err)
		}
		src, _ := netip.AddrFromSlice(from.(*net.IPAddr).IP)
		switch matchEcho(buf[:n], req, dst.Is6()) {
		case echoReply:
			if src.Unmap() == dst {
				return nil
			}
		case echoUnreachable:
			return fmt.Errorf("icmp echo to %s: destination unreachable (type %d code %d from %s)", dst, buf[0], buf[1], src.Unmap())
		}
	}
}

type echoMatch int

const (
	echoOther echoMatch = iota
	echoReply
	echoUnreachable
)

// matchEcho classifies an ICMP message (without IP header) against our
// request: its reply, an unreachable quoting it, or something else.
func matchEcho(msg, req []byte, v6 bool) echoMatch {
	if len(msg) < 8 {
		return echoOther
	}
	reply, unreachable := byte(icmp4EchoReply), byte(icmp4Unreachable)
	if v6 {
		reply, unreachable = icmp6EchoReply, icmp6Unreachable
	}
	switch msg[0] {
	case reply:
		if msg[1] == 0 && bytes.Equal(msg[4:8], req[4:8]) && bytes.Equal(msg[8:], req[8:]) {
			return echoReply
		}
	case unreachable:
		// The quote: the original IP header, then at least 8 bytes of our
		// ICMP header (type, code, checksum, id, seq).
		quote := msg[8:]
		hdr := 40
		if !v6 {
			if len(quote) < 20 {
				return echoOther
			}
			hdr = int(quote[0]&0x0f) * 4
		}
		if len(quote) >= hdr+8 && quote[hdr] == req[0] && bytes.Equal(quote[hdr+4:hdr+8], req[4:8]) {
			return echoUnreachable
		}
	}
	return echoOther
}

// checksum is the Internet checksum (RFC 1071).
func checksum(b []byte) uint16 {
	var sum uint32
	for ; len(b) >= 2; b = b[2:] {
		sum += uint32(b[0])<<8 | uint32(b[1])
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
