package bgp

import (
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"
)

// probeMD5 checks that the kernel accepts a TCP-MD5 key for addr, so a
// peer with a password fails at configuration time with a clear error
// instead of GoBGP logging a warning on every connection attempt. It uses
// a throwaway socket; the key dies with it.
func probeMD5(addr netip.Addr) error {
	family := unix.AF_INET
	if addr.Is6() {
		family = unix.AF_INET6
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("probe socket: %w", err)
	}
	defer unix.Close(fd)
	sig := unix.TCPMD5Sig{Keylen: 5}
	copy(sig.Key[:], "probe")
	sig.Addr.Family = uint16(family)
	// sockaddr_in keeps the address after the port (2 bytes);
	// sockaddr_in6 after port and flow info (6 bytes).
	if addr.Is4() {
		a := addr.As4()
		copy(sig.Addr.Data[2:], a[:])
	} else {
		a := addr.As16()
		copy(sig.Addr.Data[6:], a[:])
	}
	if err := unix.SetsockoptTCPMD5Sig(fd, unix.IPPROTO_TCP, unix.TCP_MD5SIG, &sig); err != nil {
		return fmt.Errorf("setsockopt TCP_MD5SIG: %w", err)
	}
	return nil
}
