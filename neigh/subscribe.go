package neigh

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// subscription holds the four netlink notification streams the loop
// watches, all opened in the Resolver's namespace. The state itself is
// always re-read with dumps on the request handle: notifications only say
// when. That is also why ListExisting is not used: the dump that follows
// subscribing is done synchronously on the handle, where completion and
// interruption (netlink.ErrDumpInterrupted) are visible.
type subscription struct {
	done   chan struct{}
	once   sync.Once
	routes chan netlink.RouteUpdate
	neighs chan netlink.NeighUpdate
	links  chan netlink.LinkUpdate
	addrs  chan netlink.AddrUpdate
	errs   chan error
	// drains empty the channels of the streams that started, until
	// netlink's goroutines close them.
	drains []func()
}

// subscriptionBuffer is deep enough for a burst of notifications between
// two evaluations; netlink's receive goroutine blocks (it does not drop)
// when it is full.
const subscriptionBuffer = 64

func drainer[T any](ch <-chan T) func() {
	return func() {
		for range ch {
		}
	}
}

func (l *loop) subscribe() error {
	s := &subscription{
		done:   make(chan struct{}),
		routes: make(chan netlink.RouteUpdate, subscriptionBuffer),
		neighs: make(chan netlink.NeighUpdate, subscriptionBuffer),
		links:  make(chan netlink.LinkUpdate, subscriptionBuffer),
		addrs:  make(chan netlink.AddrUpdate, subscriptionBuffer),
		errs:   make(chan error, 1),
	}
	ns := l.ns
	onError := func(what string) func(error) {
		return func(err error) {
			select {
			case <-s.done:
				return // our own Close makes Receive fail
			default:
			}
			l.log.Warn("netlink subscription error", "subscription", what, "err", err)
			select {
			case s.errs <- err:
			default:
			}
		}
	}
	steps := []struct {
		what  string
		start func() error
		drain func()
	}{
		{"route", func() error {
			return netlink.RouteSubscribeWithOptions(s.routes, s.done, netlink.RouteSubscribeOptions{Namespace: &ns, ErrorCallback: onError("route")})
		}, drainer(s.routes)},
		{"neighbour", func() error {
			return netlink.NeighSubscribeWithOptions(s.neighs, s.done, netlink.NeighSubscribeOptions{Namespace: &ns, ErrorCallback: onError("neighbour")})
		}, drainer(s.neighs)},
		{"link", func() error {
			return netlink.LinkSubscribeWithOptions(s.links, s.done, netlink.LinkSubscribeOptions{Namespace: &ns, ErrorCallback: onError("link")})
		}, drainer(s.links)},
		{"address", func() error {
			return netlink.AddrSubscribeWithOptions(s.addrs, s.done, netlink.AddrSubscribeOptions{Namespace: &ns, ErrorCallback: onError("address")})
		}, drainer(s.addrs)},
	}
	for _, st := range steps {
		err := withSocketNS(l.ns, func(h netns.NsHandle) error {
			ns = h
			return st.start()
		})
		if err != nil {
			s.close(l)
			return fmt.Errorf("%s notifications: %w", st.what, err)
		}
		s.drains = append(s.drains, st.drain)
	}
	l.sub = s
	if l.r.subscribed != nil {
		l.r.subscribed(s)
	}
	return nil
}

// close stops the streams: closing done makes netlink close the sockets,
// its goroutines then fail to receive and close their channels, which are
// drained meanwhile so that none stays blocked on a send.
func (s *subscription) close(l *loop) {
	s.stop()
	finished := make(chan struct{})
	go func() {
		for _, d := range s.drains {
			d()
		}
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(drainTimeout):
		l.log.Error("netlink subscription goroutines did not stop", "err", errors.New("timeout"), "waited", drainTimeout)
	}
}

// stop closes done once; the netlink goroutines then wind down.
func (s *subscription) stop() { s.once.Do(func() { close(s.done) }) }

func (l *loop) unsubscribe() {
	if l.sub != nil {
		l.sub.close(l)
		l.sub = nil
	}
}

// The channel accessors return nil for no subscription, so that the
// loop's select simply never picks them.

func (s *subscription) routeC() <-chan netlink.RouteUpdate {
	if s == nil {
		return nil
	}
	return s.routes
}

func (s *subscription) neighC() <-chan netlink.NeighUpdate {
	if s == nil {
		return nil
	}
	return s.neighs
}

func (s *subscription) linkC() <-chan netlink.LinkUpdate {
	if s == nil {
		return nil
	}
	return s.links
}

func (s *subscription) addrC() <-chan netlink.AddrUpdate {
	if s == nil {
		return nil
	}
	return s.addrs
}

func (s *subscription) errC() <-chan error {
	if s == nil {
		return nil
	}
	return s.errs
}
