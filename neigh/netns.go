package neigh

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// openNamespace returns a handle of its own on the namespace Options name:
// a duplicate of NetNS, NetNSPath opened, or else the namespace of the
// calling thread (a caller that entered a namespace has its goroutine
// locked to that thread, so this is the namespace it means).
func openNamespace(opts *Options) (netns.NsHandle, error) {
	switch {
	case nsSet(opts.NetNS) && opts.NetNSPath != "":
		return netns.None(), fmt.Errorf("both NetNS and NetNSPath given")
	case nsSet(opts.NetNS):
		return dupNamespace(opts.NetNS)
	case opts.NetNSPath != "":
		h, err := netns.GetFromPath(opts.NetNSPath)
		if err != nil {
			return netns.None(), fmt.Errorf("open namespace %s: %w", opts.NetNSPath, err)
		}
		return h, nil
	default:
		h, err := netns.Get()
		if err != nil {
			return netns.None(), fmt.Errorf("open the current network namespace: %w", err)
		}
		return h, nil
	}
}

// nsSet reports whether h names a namespace: the zero value and
// netns.None() both mean "not given".
func nsSet(h netns.NsHandle) bool { return h > 0 }

// dupNamespace duplicates h so that its user can close it independently.
func dupNamespace(h netns.NsHandle) (netns.NsHandle, error) {
	fd, err := unix.FcntlInt(uintptr(h), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return netns.None(), fmt.Errorf("duplicate namespace handle %d: %w", int(h), err)
	}
	return netns.NsHandle(fd), nil
}

// inNamespace runs fn on a fresh OS thread that has entered ns, for the
// socket() calls that must happen inside it. The goroutine exits without
// unlocking its thread, so the runtime destroys the thread rather than
// reuse it in the wrong namespace; nothing needs to be switched back.
func inNamespace(ns netns.NsHandle, fn func() error) error {
	local := errors.New("local")
	err := withSocketNS(ns, func(h netns.NsHandle) error {
		if !nsSet(h) {
			return fn() // already there: no thread to sacrifice
		}
		return local
	})
	if err != local {
		return err
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// withSocketNS runs fn, on a thread locked for the call, with the handle
// to create sockets in: netns.None() when ns is the namespace that thread
// is already in (the sockets are then simply created, with no setns(2),
// which needs CAP_SYS_ADMIN; vipcastd's systemd unit grants none and
// forbids namespace changes), ns itself otherwise.
func withSocketNS(ns netns.NsHandle, fn func(netns.NsHandle) error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return fn(socketNS(ns))
}

// socketNS is withSocketNS's choice; the caller's thread must be locked.
func socketNS(ns netns.NsHandle) netns.NsHandle {
	if !nsSet(ns) {
		return ns
	}
	var a, b unix.Stat_t
	if unix.Fstat(int(ns), &a) != nil || unix.Stat("/proc/thread-self/ns/net", &b) != nil {
		return ns
	}
	if a.Dev == b.Dev && a.Ino == b.Ino {
		return netns.None()
	}
	return ns
}
