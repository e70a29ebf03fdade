package lab

import (
	"fmt"
	"net"
	"time"

	"golang.org/x/sys/unix"
)

// MAC is the LB's eth0 address.
func (x *LB) MAC() net.HardwareAddr { return macFor(x.V4) }

// ClientMAC is the client's eth0 address.
func ClientMAC() net.HardwareAddr { return macFor(ClientV4) }

// SendFrames writes raw Ethernet frames, as they are, out of ifname in ns
// (AF_PACKET), for traffic no socket API would build. After every batch
// frames it pauses, so that the veth rings on the way take them all.
func SendFrames(ns *NS, ifname string, frames [][]byte, batch int, pause time.Duration) error {
	return ns.Do(func() error {
		iface, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: iface.Index}); err != nil {
			return fmt.Errorf("bind to %s: %w", ifname, err)
		}
		for i, f := range frames {
			if _, err := unix.Write(fd, f); err != nil {
				return fmt.Errorf("frame %d (%d bytes): %w", i, len(f), err)
			}
			if batch > 0 && (i+1)%batch == 0 {
				time.Sleep(pause)
			}
		}
		return nil
	})
}
