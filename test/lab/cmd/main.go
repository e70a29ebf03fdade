// Command vipcast-lab builds, inspects and removes the vipcast netns lab
// (test/lab) from the command line:
//
//	go run ./test/lab/cmd up [--id ID] [--bin DIR] [--lbs N]
//	go run ./test/lab/cmd status [ID...]
//	go run ./test/lab/cmd server ID real2 stop|start
//	go run ./test/lab/cmd down [ID...]
//
// `up` needs vipcastd and vipcast in --bin (`make build` puts them in bin/)
// and leaves the lab running; `down` without ids removes every lab under
// /run/vipcast-lab. `serve` is what the lab runs on each real. See
// test/lab/README.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"vipcast/test/lab"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: vipcast-lab <command> [flags]

  up [--id ID] [--bin DIR] [--lbs N]   build the lab and start BIRD, the reals and vipcastd
  status [ID...]                       namespaces, processes, BGP and VIPs of running labs
  down [ID...]                         remove labs (all of them without ids)
  server ID REAL stop|start            stop or start a real's servers (REAL: real1..real3)
  serve --name NAME [--vip ADDR...]    run a real's HTTP and UDP echo servers (used by the lab)
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "up":
		err = up(args[1:], stdout)
	case "down":
		err = down(args[1:], stdout)
	case "status":
		err = status(args[1:], stdout)
	case "serve":
		err = serve(args[1:])
	case "server":
		err = server(args[1:], stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "vipcast-lab: unknown command %q\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "vipcast-lab: %v\n", err)
		return 1
	}
	return 0
}

func up(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	id := fs.String("id", "", "lab id (default random)")
	bin := fs.String("bin", "bin", "directory with vipcastd and vipcast")
	lbs := fs.Int("lbs", 1, "LBs running vipcastd (0, 1 or 2)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	l, err := lab.Up(ctx, lab.Options{
		ID: *id, Bin: *bin, ServeBin: self, Detached: true, LBs: *lbs,
		Logf: func(format string, a ...any) { fmt.Fprintf(stdout, format+"\n", a...) },
	})
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Fprintf(stdout, `lab %[1]s is up. Try:
  nsenter --net=/run/netns/vc%[1]s-client curl -s http://%[2]s/
  %[3]s --socket %[4]s vip list -l
  birdc -s %[5]s show route
  go run ./test/lab/cmd status %[1]s
  go run ./test/lab/cmd down %[1]s
`, l.ID, lab.VIP4, filepath.Join(l.Bin, lab.CLIBin), l.LBs[0].Socket, l.Bird.Ctl)
	return nil
}

func down(ids []string, stdout io.Writer) error {
	if len(ids) == 0 {
		ids = lab.Known()
	}
	var failed []string
	for _, id := range ids {
		if err := lab.Remove(id); err != nil {
			failed = append(failed, fmt.Sprintf("%s: %v", id, err))
			continue
		}
		fmt.Fprintf(stdout, "lab %s removed\n", id)
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s", strings.Join(failed, "; "))
	}
	return nil
}

func status(ids []string, stdout io.Writer) error {
	if len(ids) == 0 {
		ids = lab.Known()
	}
	if len(ids) == 0 {
		fmt.Fprintln(stdout, "no lab is up")
		return nil
	}
	for _, id := range ids {
		l, err := lab.Open(id)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "== lab %s (%s)\n", id, l.Dir)
		for _, ns := range append([]*lab.NS{l.Fabric, l.Client, l.Router}, nsOf(l)...) {
			if _, err := os.Stat(ns.Path); err != nil {
				fmt.Fprintf(stdout, "  %-16s missing\n", ns.Name)
				continue
			}
			fmt.Fprintf(stdout, "  %-16s %s\n", ns.Name, processes(ns))
		}
		if l.Bird != nil {
			out, _ := l.Bird.Query("show protocols")
			fmt.Fprintf(stdout, "-- BIRD protocols\n%s", birdText(out))
			out, _ = l.Bird.Query("show route")
			fmt.Fprintf(stdout, "-- BIRD routes\n%s", birdText(out))
		}
		for _, x := range l.LBs {
			if _, err := os.Stat(x.Socket); err != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			out, errOut, _ := x.CLI(ctx, "vip", "list", "-l")
			cancel()
			fmt.Fprintf(stdout, "-- %s: vipcast vip list -l\n%s%s", x.Name, out, errOut)
		}
		l.Close()
	}
	return nil
}

func server(args []string, stdout io.Writer) error {
	if len(args) != 3 || (args[2] != "stop" && args[2] != "start") {
		return fmt.Errorf("usage: server ID REAL stop|start")
	}
	l, err := lab.Open(args[0])
	if err != nil {
		return err
	}
	defer l.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	l.SetServeBin(self)
	for _, r := range l.Reals {
		if r.Name != args[1] {
			continue
		}
		if args[2] == "stop" {
			r.StopServer()
			fmt.Fprintf(stdout, "%s: servers stopped\n", r.Name)
			return nil
		}
		if err := r.StartServer(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: servers started\n", r.Name)
		return nil
	}
	return fmt.Errorf("lab %s has no real %q", args[0], args[1])
}

func nsOf(l *lab.Lab) []*lab.NS {
	var out []*lab.NS
	for _, x := range l.LBs {
		out = append(out, x.NS)
	}
	for _, r := range l.Reals {
		out = append(out, r.NS)
	}
	return out
}

// processes names what runs in a namespace ("bird(1234) ...").
func processes(ns *lab.NS) string {
	out, err := exec.Command("ip", "netns", "pids", ns.Name).Output()
	if err != nil {
		return "?"
	}
	var names []string
	for _, pid := range strings.Fields(string(out)) {
		comm, _ := os.ReadFile(filepath.Join("/proc", pid, "comm"))
		names = append(names, fmt.Sprintf("%s(%s)", strings.TrimSpace(string(comm)), pid))
	}
	sort.Strings(names)
	if len(names) == 0 {
		return "-"
	}
	return strings.Join(names, " ")
}

// birdText strips the reply codes of BIRD's control protocol.
func birdText(reply string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimRight(reply, "\n"), "\n") {
		if len(line) >= 5 && line[0] >= '0' && line[0] <= '9' && (line[4] == ' ' || line[4] == '-') {
			line = line[5:]
		} else {
			line = strings.TrimPrefix(line, " ")
		}
		if strings.TrimSpace(line) != "" {
			b.WriteString("  " + line + "\n")
		}
	}
	return b.String()
}

func serve(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	name := fs.String("name", "", "the real's name, sent in every answer")
	httpPort := fs.Int("http-port", lab.HTTPPort, "HTTP port")
	udpPort := fs.Int("udp-port", lab.UDPPort, "UDP echo port")
	var vips []netip.Addr
	fs.Func("vip", "a VIP to serve UDP on (repeat)", func(s string) error {
		a, err := netip.ParseAddr(s)
		vips = append(vips, a)
		return err
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	return lab.Serve(ctx, lab.ServeOptions{Name: *name, HTTPPort: *httpPort, UDPPort: *udpPort, VIPs: vips})
}
