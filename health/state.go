package health

import "fmt"

// State is a real's health as the checker sees it. The zero value is Down,
// the state every target starts in.
type State uint8

// The health states. Draining and disabled are operator states that the
// daemon keeps; the checker never reports them.
const (
	Down State = iota
	Up
)

func (s State) String() string {
	switch s {
	case Down:
		return "down"
	case Up:
		return "up"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// MarshalText makes states readable in JSON and logs.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads "up" or "down".
func (s *State) UnmarshalText(b []byte) error {
	switch string(b) {
	case "down":
		*s = Down
	case "up":
		*s = Up
	default:
		return fmt.Errorf("health state %q: must be up or down: %w", b, ErrInvalid)
	}
	return nil
}

// machine counts consecutive results and decides the state: rise passes in
// a row take a Down target Up, fall failures in a row take an Up target Down.
type machine struct {
	state     State
	successes int // consecutive passes, 0 after a failure
	failures  int // consecutive failures, 0 after a pass
}

// observe records one result and reports whether the state changed.
func (m *machine) observe(ok bool, rise, fall int) bool {
	if ok {
		m.successes++
		m.failures = 0
		if m.state == Down && m.successes >= rise {
			m.state = Up
			return true
		}
		return false
	}
	m.failures++
	m.successes = 0
	if m.state == Up && m.failures >= fall {
		m.state = Down
		return true
	}
	return false
}
