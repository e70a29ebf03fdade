package daemon

import (
	"net/netip"

	"vipcast/config"
	"vipcast/health"
	"vipcast/lb"
)

// desiredFromConfig is the desired state a configuration file describes.
// The config package has validated it; lb re-validates what it programs.
func desiredFromConfig(cfg *config.Config) map[lb.VIPKey]*wantVIP {
	out := make(map[lb.VIPKey]*wantVIP, len(cfg.VIPs))
	for i := range cfg.VIPs {
		v := &cfg.VIPs[i]
		key := lb.VIPKey{Addr: v.Address, Port: v.Port, Proto: lb.Proto(v.Protocol.Number())}
		w := &wantVIP{
			vip:       lb.VIP{Key: key, Flags: vipFlags(v.Flags), RingSize: v.RingSize},
			check:     checkSpec(v.Health),
			moveFlows: v.Health.MoveFlowsOnDown,
			route:     v.BGP,
			reals:     make(map[netip.Addr]*wantReal, len(v.Reals)),
		}
		for j := range v.Reals {
			r := &v.Reals[j]
			w.reals[r.Address] = &wantReal{
				addr:      r.Address,
				weight:    r.Weight,
				admin:     adminFromConfig(r.State),
				check:     checkSpec(v.Check(r)),
				moveFlows: v.Check(r).MoveFlowsOnDown,
			}
		}
		out[key] = w
	}
	return out
}

func vipFlags(f config.VIPFlags) lb.VIPFlags {
	var out lb.VIPFlags
	if f.NoSrcPort {
		out |= lb.FlagNoSrcPort
	}
	if f.LRUBypass {
		out |= lb.FlagLRUBypass
	}
	if f.DportOnly {
		out |= lb.FlagDportOnly
	}
	return out
}

func adminFromConfig(s config.RealState) adminState {
	switch s {
	case config.RealDrain:
		return adminDrain
	case config.RealDisabled:
		return adminDisabled
	}
	return adminUp
}

// checkSpec translates a resolved config check into the checker's terms.
func checkSpec(h config.HealthCheck) health.CheckSpec {
	s := health.CheckSpec{
		Type:               health.CheckType(h.Type),
		Port:               h.Port,
		Direct:             h.Direct,
		Interval:           h.Interval,
		Timeout:            h.Timeout,
		Rise:               h.Rise,
		Fall:               h.Fall,
		Method:             h.Method,
		Path:               h.Path,
		Host:               h.Host,
		ExpectStatus:       h.ExpectStatus,
		BodyContains:       h.BodyContains,
		SNI:                h.SNI,
		InsecureSkipVerify: h.InsecureSkipVerify,
		Payload:            []byte(h.Payload),
		Command:            h.Command,
	}
	if h.Type == config.CheckUDP {
		s.Expect = health.ExpectSilence
		if h.ExpectReply {
			s.Expect = health.ExpectReply
		}
	}
	return s
}
