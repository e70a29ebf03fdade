package neigh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/ndp"
	"github.com/mdlayher/packet"
	"github.com/vishvananda/netns"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// probe is one active resolution of a next hop: up to attempts requests,
// each waiting timeout for the answer.
type probe struct {
	ns       netns.NsHandle
	ifindex  int
	ifname   string
	ifmac    net.HardwareAddr
	src      netip.Addr
	target   netip.Addr
	attempts int
	timeout  time.Duration
}

// resolve asks the next hop for its MAC with ARP or NDP, by its family,
// and hands the outcome to report before it closes its socket: closing an
// AF_PACKET socket waits for an RCU grace period (synchronize_net in
// packet_release), measured at 5–15 ms, which must not delay the result.
// After reporting it also yields: the blocking close(2) keeps this
// goroutine's P until the runtime's sysmon takes it back (up to 10 ms),
// and the receiver just readied on that P would wait as long.
func (p probe) resolve(ctx context.Context, report func(net.HardwareAddr, error)) {
	reportFirst := func(mac net.HardwareAddr, err error) {
		report(mac, err)
		runtime.Gosched()
	}
	if p.target.Is4() {
		p.arp(ctx, reportFirst)
		return
	}
	p.ndp(ctx, reportFirst)
}

// deadlineConn is what both probes need of their socket.
type deadlineConn interface {
	SetDeadline(time.Time) error
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// exchange sends a request and reads until answer recognises a reply, an
// attempt's timeout passes (then it sends again), the attempts run out or
// ctx ends. Cancelling ctx moves the socket's deadline into the past, so a
// blocked read returns at once.
func (p probe) exchange(ctx context.Context, c deadlineConn, send func() error, read func() (net.HardwareAddr, bool, error)) (net.HardwareAddr, error) {
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	for range p.attempts {
		deadline := time.Now().Add(p.timeout)
		if err := c.SetDeadline(deadline); err != nil {
			return nil, err
		}
		// Checked after setting the deadline: if ctx ended before, the
		// AfterFunc may already have run and been overridden.
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := send(); err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("send %s request for %s on %s: %w", protocolFor(familyOf(p.target)), p.target, p.ifname, err)
		}
		for {
			mac, ok, err := read()
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break
				}
				return nil, fmt.Errorf("read %s reply on %s: %w", protocolFor(familyOf(p.target)), p.ifname, err)
			}
			if ok {
				return mac, nil
			}
		}
	}
	return nil, reason(ErrUnanswered, "%s for %s on %s unanswered (%d attempts, %s each)",
		protocolFor(familyOf(p.target)), p.target, p.ifname, p.attempts, p.timeout)
}

// arp resolves an IPv4 next hop over an AF_PACKET socket bound to the
// interface, sending from the address sourceAddress chose (arp.Client
// would take the interface's first address).
func (p probe) arp(ctx context.Context, report func(net.HardwareAddr, error)) {
	ifi := &net.Interface{Index: p.ifindex, Name: p.ifname, HardwareAddr: p.ifmac}
	var conn *packet.Conn
	err := inNamespace(p.ns, func() error {
		var err error
		conn, err = packet.Listen(ifi, packet.Raw, unix.ETH_P_ARP, nil)
		return err
	})
	if err != nil {
		report(nil, fmt.Errorf("open ARP socket on %s: %w", p.ifname, err))
		return
	}
	defer conn.Close()
	frame, err := arpRequest(p.ifmac, p.src, p.target)
	if err != nil {
		report(nil, err)
		return
	}
	buf := make([]byte, 1600)
	report(p.exchange(ctx, conn,
		func() error {
			_, err := conn.WriteTo(frame, &packet.Addr{HardwareAddr: ethernet.Broadcast})
			return err
		},
		func() (net.HardwareAddr, bool, error) {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				return nil, false, err
			}
			mac, ok := arpAnswer(buf[:n], p.target)
			return mac, ok, nil
		}))
}

// arpRequest is the broadcast Ethernet frame asking who has target.
func arpRequest(mac net.HardwareAddr, src, target netip.Addr) ([]byte, error) {
	req, err := arp.NewPacket(arp.OperationRequest, mac, src, ethernet.Broadcast, target)
	if err != nil {
		return nil, fmt.Errorf("build ARP request for %s: %w", target, err)
	}
	payload, err := req.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("build ARP request for %s: %w", target, err)
	}
	frame, err := (&ethernet.Frame{
		Destination: ethernet.Broadcast,
		Source:      mac,
		EtherType:   ethernet.EtherTypeARP,
		Payload:     payload,
	}).MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("build ARP request for %s: %w", target, err)
	}
	return frame, nil
}

// arpAnswer recognises a frame in which target states its MAC: a reply
// from it, or its gratuitous announcement.
func arpAnswer(b []byte, target netip.Addr) (net.HardwareAddr, bool) {
	var f ethernet.Frame
	if err := f.UnmarshalBinary(b); err != nil || f.EtherType != ethernet.EtherTypeARP {
		return nil, false
	}
	var pkt arp.Packet
	if err := pkt.UnmarshalBinary(f.Payload); err != nil {
		return nil, false
	}
	if pkt.SenderIP != target || !validMAC(pkt.SenderHardwareAddr) {
		return nil, false
	}
	gratuitous := pkt.Operation == arp.OperationRequest && pkt.TargetIP == target
	if pkt.Operation != arp.OperationReply && !gratuitous {
		return nil, false
	}
	return append(net.HardwareAddr(nil), pkt.SenderHardwareAddr...), true
}

// ndp resolves an IPv6 next hop: a Neighbor Solicitation to its
// solicited-node multicast address from a raw ICMPv6 socket, and the
// Neighbor Advertisement that answers it. The socket is bound to the
// interface and source address by index and sockaddr, never by name; see
// the package documentation for why ndp.Listen is not used.
func (p probe) ndp(ctx context.Context, report func(net.HardwareAddr, error)) {
	conn, err := p.icmp6Socket()
	if err != nil {
		report(nil, fmt.Errorf("open NDP socket on %s: %w", p.ifname, err))
		return
	}
	defer conn.Close()

	sol, err := ndp.MarshalMessage(&ndp.NeighborSolicitation{
		TargetAddress: p.target.WithZone(""),
		Options:       []ndp.Option{&ndp.LinkLayerAddress{Direction: ndp.Source, Addr: p.ifmac}},
	})
	if err != nil {
		report(nil, fmt.Errorf("build neighbor solicitation for %s: %w", p.target, err))
		return
	}
	group, err := ndp.SolicitedNodeMulticast(p.target.WithZone(""))
	if err != nil {
		report(nil, fmt.Errorf("solicited-node group of %s: %w", p.target, err))
		return
	}
	dst := &net.IPAddr{IP: group.AsSlice()}
	cm := &ipv6.ControlMessage{HopLimit: ndp.HopLimit, IfIndex: p.ifindex}
	buf := make([]byte, 1500)
	report(p.exchange(ctx, conn,
		func() error {
			_, err := conn.WriteTo(sol, cm, dst)
			return err
		},
		func() (net.HardwareAddr, bool, error) {
			n, rcm, _, err := conn.ReadFrom(buf)
			if err != nil {
				return nil, false, err
			}
			// RFC 4861 7.1.2: a hop limit below 255 means the message
			// was forwarded by a router and must be ignored.
			if rcm != nil && rcm.HopLimit != ndp.HopLimit {
				return nil, false, nil
			}
			mac, ok := ndpAnswer(buf[:n], p.target)
			return mac, ok, nil
		}))
}

func (p probe) icmp6Socket() (*ipv6.PacketConn, error) {
	var fd int
	err := inNamespace(p.ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_ICMPV6)
		return err
	})
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "ndp")
	defer f.Close() // FilePacketConn works on a duplicate
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BINDTOIFINDEX, p.ifindex); err != nil {
		return nil, fmt.Errorf("bind to ifindex %d: %w", p.ifindex, err)
	}
	sa := &unix.SockaddrInet6{Addr: p.src.As16()}
	if p.src.IsLinkLocalUnicast() {
		sa.ZoneId = uint32(p.ifindex)
	}
	if err := unix.Bind(fd, sa); err != nil {
		return nil, fmt.Errorf("bind to %s: %w", p.src, err)
	}
	pc, err := net.FilePacketConn(f)
	if err != nil {
		return nil, err
	}
	conn := ipv6.NewPacketConn(pc)
	var filter ipv6.ICMPFilter
	filter.SetAll(true)
	filter.Accept(ipv6.ICMPTypeNeighborAdvertisement)
	for _, set := range []func() error{
		func() error { return conn.SetHopLimit(ndp.HopLimit) },
		func() error { return conn.SetMulticastHopLimit(ndp.HopLimit) },
		func() error { return conn.SetICMPFilter(&filter) },
		func() error { return conn.SetControlMessage(ipv6.FlagHopLimit, true) },
	} {
		if err := set(); err != nil {
			conn.Close()
			return nil, err
		}
	}
	return conn, nil
}

// ndpAnswer recognises a Neighbor Advertisement for target that carries
// its link-layer address.
func ndpAnswer(b []byte, target netip.Addr) (net.HardwareAddr, bool) {
	m, err := ndp.ParseMessage(b)
	if err != nil {
		return nil, false
	}
	na, ok := m.(*ndp.NeighborAdvertisement)
	if !ok || na.TargetAddress.WithZone("") != target.WithZone("") {
		return nil, false
	}
	for _, o := range na.Options {
		if lla, ok := o.(*ndp.LinkLayerAddress); ok && lla.Direction == ndp.Target && validMAC(lla.Addr) {
			return append(net.HardwareAddr(nil), lla.Addr...), true
		}
	}
	return nil, false
}
