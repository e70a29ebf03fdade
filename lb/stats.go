package lb

import (
	"fmt"
	"net/netip"

	"vipcast/bpf"
)

// Counter is a packet and byte count (bytes of the IP packet as received).
type Counter struct {
	Packets uint64
	Bytes   uint64
}

// Stats are the balancer's global counters, summed over CPUs.
type Stats = bpf.BalancerLbStats

// Stats reads the global counters.
func (b *Balancer) Stats() (Stats, error) {
	var per []bpf.BalancerLbStats
	if err := b.objs.Stats.Lookup(uint32(0), &per); err != nil {
		return Stats{}, fmt.Errorf("read stats: %w", err)
	}
	var sum Stats
	for _, s := range per {
		sum.XdpAborted += s.XdpAborted
		sum.XdpDrop += s.XdpDrop
		sum.XdpPass += s.XdpPass
		sum.XdpTx += s.XdpTx
		sum.ConnHit += s.ConnHit
		sum.FallbackHit += s.FallbackHit
		sum.ConnMissTcpSyn += s.ConnMissTcpSyn
		sum.ConnMissTcpOther += s.ConnMissTcpOther
		sum.ConnMissUdp += s.ConnMissUdp
		sum.ConnRepickDown += s.ConnRepickDown
		sum.IcmpEchoReply += s.IcmpEchoReply
		sum.IcmpTooBig += s.IcmpTooBig
		sum.IcmpErrorFwd += s.IcmpErrorFwd
		sum.DropFragment += s.DropFragment
		sum.DropIpOptions += s.DropIpOptions
		sum.DropMalformed += s.DropMalformed
		sum.DropNoReal += s.DropNoReal
		sum.DropNoGateway += s.DropNoGateway
		sum.DropTooBig += s.DropTooBig
		sum.PassMalformed += s.PassMalformed
	}
	return sum, nil
}

// VIPStats reads the forwarded-traffic counter of one VIP.
func (b *Balancer) VIPStats(k VIPKey) (Counter, error) {
	b.mu.Lock()
	vs, ok := b.vips[k]
	b.mu.Unlock()
	if !ok {
		return Counter{}, fmt.Errorf("vip %s: %w", k, ErrNotFound)
	}
	return b.readCounter(b.objs.VipStats, vs.num)
}

// RealStats reads the counter of one real of one VIP.
func (b *Balancer) RealStats(k VIPKey, addr netip.Addr) (Counter, error) {
	b.mu.Lock()
	vs, ok := b.vips[k]
	var id uint32
	if ok {
		if rs, found := vs.reals[addr]; found {
			id = rs.id
		}
	}
	b.mu.Unlock()
	if !ok {
		return Counter{}, fmt.Errorf("vip %s: %w", k, ErrNotFound)
	}
	if id == 0 {
		return Counter{}, fmt.Errorf("vip %s: real %s: %w", k, addr, ErrNotFound)
	}
	return b.readCounter(b.objs.RealStats, id)
}

func (b *Balancer) readCounter(m interface {
	Lookup(key, valueOut any) error
}, idx uint32) (Counter, error) {
	var per []bpf.BalancerCounter
	if err := m.Lookup(idx, &per); err != nil {
		return Counter{}, fmt.Errorf("read counter %d: %w", idx, err)
	}
	var c Counter
	for _, v := range per {
		c.Packets += v.Packets
		c.Bytes += v.Bytes
	}
	return c, nil
}
