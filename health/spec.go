package health

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// ErrInvalid is wrapped by every validation error, so the API server can
// answer InvalidArgument with errors.Is.
var ErrInvalid = errors.New("invalid argument")

// CheckType names how a real is checked.
type CheckType string

// The check types.
const (
	TypeTCP   CheckType = "tcp"   // TCP connect (then reset)
	TypeHTTP  CheckType = "http"  // HTTP request over TCP
	TypeHTTPS CheckType = "https" // HTTP request over TLS
	TypeUDP   CheckType = "udp"   // datagram out, see UDPExpect
	TypeICMP  CheckType = "icmp"  // ICMP / ICMPv6 echo
	TypeExec  CheckType = "exec"  // a command; exit status 0 passes
	TypeNone  CheckType = "none"  // never probed, always Up
)

// UDPExpect says what a UDP check expects after it sent its datagram.
type UDPExpect string

// The UDP expectations; the package documentation describes them.
const (
	ExpectReply   UDPExpect = "reply"
	ExpectSilence UDPExpect = "no-reply-within-timeout"
)

// Defaults of CheckSpec.
const (
	DefaultInterval = time.Second
	DefaultTimeout  = time.Second
	DefaultRise     = 2
	DefaultFall     = 3
	DefaultMethod   = "GET"
	DefaultPath     = "/"
)

// CheckSpec says how one real of one VIP is checked. The zero value is a TCP
// connect check to the service port with default timing.
type CheckSpec struct {
	Type CheckType // default tcp
	// Port is the port checked; 0 means the VIP's service port.
	Port uint16
	// Direct checks the real's own address instead of VIP:port, without a
	// mark, so the check does not go through the tunnel.
	Direct bool

	Interval time.Duration // between check starts; default 1s
	Timeout  time.Duration // of one check; default 1s
	Rise     int           // consecutive passes Down → Up; default 2
	Fall     int           // consecutive failures Up → Down; default 3

	// HTTP and HTTPS.
	Method string // default GET
	Path   string // default "/"; must start with "/"
	Host   string // Host header; default the checked address
	// ExpectStatus lists the status codes that pass. Empty means any 2xx or
	// 3xx (200-399): redirects are not followed, a redirect answer shows the
	// service is up.
	ExpectStatus []int
	// BodyContains, when set, must occur in the first 64 KiB of the body.
	BodyContains string
	// SNI is the TLS server name sent and verified; default the host part of
	// Host, else none (the certificate must then name the checked IP).
	SNI                string
	InsecureSkipVerify bool

	// UDP.
	Payload []byte    // the datagram sent (may be empty)
	Expect  UDPExpect // default reply

	// Exec: the command and its arguments, run without a shell. It gets
	// VIPCAST_VIP, VIPCAST_VIP_PORT, VIPCAST_PROTO, VIPCAST_REAL,
	// VIPCAST_MARK (0 when Direct) and VIPCAST_PORT (the checked port) in
	// its environment, and is killed with its process group at Timeout.
	Command []string
}

// Target is one real of one VIP to check.
type Target struct {
	// ID is the stable key of the target, e.g. "203.0.113.1:80/tcp@192.0.2.11".
	ID    string
	VIP   netip.AddrPort // port 0: a VIP serving every port
	Proto string         // the VIP's protocol, tcp or udp
	Real  netip.Addr
	// Mark is the SO_MARK that sends a check to this real through the
	// tunnel (see MarkAllocator). Not used when Spec.Direct.
	Mark uint32
	Spec CheckSpec
	// Initial is the state a new target starts in: Down, unless the caller
	// knows better (a daemon adopting, after a restart, a real that was up
	// keeps it up until checks say otherwise). It does not affect a target
	// that is already being checked.
	Initial State
}

// TargetID is the conventional ID of a target: VIP:port/proto@real, e.g.
// "203.0.113.1:80/tcp@192.0.2.11" or "[2001:db8:f00::1]:443/tcp@2001:db8:0:1::11".
func TargetID(vip netip.AddrPort, proto string, real netip.Addr) string {
	return vip.String() + "/" + strings.ToLower(proto) + "@" + real.String()
}

// withDefaults fills the unset fields of the spec.
func (s CheckSpec) withDefaults() CheckSpec {
	if s.Type == "" {
		s.Type = TypeTCP
	}
	if s.Interval == 0 {
		s.Interval = DefaultInterval
	}
	if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
	}
	if s.Rise == 0 {
		s.Rise = DefaultRise
	}
	if s.Fall == 0 {
		s.Fall = DefaultFall
	}
	if s.Type == TypeHTTP || s.Type == TypeHTTPS {
		if s.Method == "" {
			s.Method = DefaultMethod
		}
		if s.Path == "" {
			s.Path = DefaultPath
		}
	}
	if s.Type == TypeUDP && s.Expect == "" {
		s.Expect = ExpectReply
	}
	return s
}

// WithDefaults returns the spec with every unset field at its default.
func (s CheckSpec) WithDefaults() CheckSpec { return s.withDefaults() }

// Validate reports the first problem of the spec after defaults, as an
// error that wraps ErrInvalid.
func (s CheckSpec) Validate() error {
	s = s.withDefaults()
	bad := func(format string, args ...any) error {
		return fmt.Errorf("check %s: %s: %w", s.Type, fmt.Sprintf(format, args...), ErrInvalid)
	}
	switch s.Type {
	case TypeTCP, TypeHTTP, TypeHTTPS, TypeUDP, TypeICMP, TypeExec, TypeNone:
	default:
		return fmt.Errorf("check type %q: must be tcp, http, https, udp, icmp, exec or none: %w", s.Type, ErrInvalid)
	}
	switch {
	case s.Interval < 0:
		return bad("interval %s must be positive", s.Interval)
	case s.Timeout < 0:
		return bad("timeout %s must be positive", s.Timeout)
	case s.Rise < 1:
		return bad("rise %d must be at least 1", s.Rise)
	case s.Fall < 1:
		return bad("fall %d must be at least 1", s.Fall)
	}
	if s.Type == TypeHTTP || s.Type == TypeHTTPS {
		if strings.ContainsAny(s.Method, " \t\r\n") {
			return bad("method %q must be one token", s.Method)
		}
		if !strings.HasPrefix(s.Path, "/") || strings.ContainsAny(s.Path, " \t\r\n") {
			return bad("path %q must start with / and contain no spaces", s.Path)
		}
		if strings.ContainsAny(s.Host, " \t\r\n/") {
			return bad("host %q is not a host name", s.Host)
		}
		for _, code := range s.ExpectStatus {
			if code < 100 || code > 599 {
				return bad("expected status %d is not an HTTP status code", code)
			}
		}
	}
	if s.Type == TypeUDP && s.Expect != ExpectReply && s.Expect != ExpectSilence {
		return bad("expect %q: must be %q or %q", s.Expect, ExpectReply, ExpectSilence)
	}
	if s.Type == TypeExec && (len(s.Command) == 0 || s.Command[0] == "") {
		return bad("command is empty")
	}
	return nil
}

// normalize validates the target and returns it with defaults filled in.
func (t Target) normalize() (Target, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("target %q: %s: %w", t.ID, fmt.Sprintf(format, args...), ErrInvalid)
	}
	if t.ID == "" {
		return t, fmt.Errorf("target for real %s of %s: empty ID: %w", t.Real, t.VIP, ErrInvalid)
	}
	if err := t.Spec.Validate(); err != nil {
		return t, fmt.Errorf("target %q: %w", t.ID, err)
	}
	t.Spec = t.Spec.withDefaults()
	t.Proto = strings.ToLower(t.Proto)
	switch {
	case !t.VIP.Addr().IsValid():
		return t, bad("missing VIP address")
	case !t.Real.IsValid():
		return t, bad("missing real address")
	case t.Proto != "tcp" && t.Proto != "udp":
		return t, bad("protocol %q: must be tcp or udp", t.Proto)
	}
	if t.Spec.network() {
		if t.port() == 0 && t.Spec.Type != TypeICMP {
			return t, bad("%s check of a VIP that serves every port needs a port", t.Spec.Type)
		}
		if !t.Spec.Direct && t.Mark == 0 {
			return t, bad("%s check through the tunnel needs a mark (or direct = true)", t.Spec.Type)
		}
	}
	return t, nil
}

// network tells whether the check sends packets itself.
func (s CheckSpec) network() bool {
	switch s.Type {
	case TypeTCP, TypeHTTP, TypeHTTPS, TypeUDP, TypeICMP:
		return true
	}
	return false
}

// port is the checked port (0 for checks without ports, or when unset).
func (t Target) port() uint16 {
	if t.Spec.Type == TypeICMP {
		return 0
	}
	if t.Spec.Port != 0 {
		return t.Spec.Port
	}
	return t.VIP.Port()
}

// dest is where a network check goes, and with which mark.
func (t Target) dest() (netip.AddrPort, uint32) {
	if t.Spec.Direct {
		return netip.AddrPortFrom(t.Real, t.port()), 0
	}
	return netip.AddrPortFrom(t.VIP.Addr(), t.port()), t.Mark
}

// env is what an exec check adds to the environment.
func (t Target) env() []string {
	dest, mark := t.dest()
	return []string{
		"VIPCAST_VIP=" + t.VIP.Addr().String(),
		"VIPCAST_VIP_PORT=" + strconv.Itoa(int(t.VIP.Port())),
		"VIPCAST_PROTO=" + t.Proto,
		"VIPCAST_REAL=" + t.Real.String(),
		"VIPCAST_MARK=" + strconv.FormatUint(uint64(mark), 10),
		"VIPCAST_PORT=" + strconv.Itoa(int(dest.Port())),
	}
}
