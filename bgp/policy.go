package bgp

import (
	"fmt"
	"time"
)

// Announce policy modes.
const (
	// ModeAllServices (the default): a VIP address is announced only if
	// every service on it has at least MinHealthy reals up. An address
	// usually carries one application on several ports (80 and 443);
	// announcing it while one of them is dead would attract traffic that
	// fails, so the strict mode is the safe default.
	ModeAllServices = "all_services"
	// ModeAnyService: announced if at least one service qualifies, for
	// addresses that carry unrelated services.
	ModeAnyService = "any_service"
)

// ServiceHealth is the health of one service (VIP:port/proto) on a VIP
// address, as the health checker counts it.
type ServiceHealth struct {
	Key        string // "tcp/203.0.113.1:80", for logs only
	Healthy    int    // reals up
	Total      int    // reals configured
	MinHealthy int    // 0 means 1
}

// Policy decides from the services' health whether an address is announced.
type Policy struct {
	Mode string // ModeAllServices ("" means this) or ModeAnyService
}

// Validate rejects unknown modes.
func (p Policy) Validate() error {
	switch p.Mode {
	case "", ModeAllServices, ModeAnyService:
		return nil
	}
	return fmt.Errorf("bgp: announce policy mode %q unknown (want %q or %q)", p.Mode, ModeAllServices, ModeAnyService)
}

func (h ServiceHealth) ok() bool {
	min := h.MinHealthy
	if min <= 0 {
		min = 1
	}
	return h.Healthy >= min
}

// Decide reports whether an address with these services should be
// announced. No services means no. An unknown mode is treated as
// ModeAllServices, the stricter one (Validate catches it earlier).
func Decide(services []ServiceHealth, policy Policy) bool {
	if len(services) == 0 {
		return false
	}
	if policy.Mode == ModeAnyService {
		for _, s := range services {
			if s.ok() {
				return true
			}
		}
		return false
	}
	for _, s := range services {
		if !s.ok() {
			return false
		}
	}
	return true
}

// HoldDown dampens route flaps: a withdrawal always takes effect at once
// (traffic must stop going to an LB that cannot serve it), but after a
// withdrawal the address is announced again only once Decide has said
// "yes" continuously for Delay. The first announcement is not delayed. A
// real that flaps every few seconds thus causes one withdrawal and one
// re-announcement per Delay at most, instead of a route flap upstream per
// health-check transition (which routers' flap damping would punish for
// far longer). Zero Delay disables it.
//
// HoldDown is a value per address, driven by the caller's clock; it does
// no I/O and starts no timers.
type HoldDown struct {
	Delay time.Duration

	announced bool
	withdrawn bool      // has been withdrawn at least once
	upSince   time.Time // start of the current run of "yes"
}

// Update feeds the current decision at time now. It returns whether the
// address should be announced, and, if a re-announcement is pending, when
// to call Update again (zero otherwise).
func (h *HoldDown) Update(now time.Time, want bool) (announce bool, recheck time.Time) {
	if !want {
		if h.announced {
			h.withdrawn = true
		}
		h.announced = false
		h.upSince = time.Time{}
		return false, time.Time{}
	}
	if h.announced {
		return true, time.Time{}
	}
	if h.upSince.IsZero() {
		h.upSince = now
	}
	if !h.withdrawn || h.Delay <= 0 || !now.Before(h.upSince.Add(h.Delay)) {
		h.announced = true
		return true, time.Time{}
	}
	return false, h.upSince.Add(h.Delay)
}
