// Command vipcastd is the vipcast load-balancer daemon. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"

	"vipcast/config"
	"vipcast/daemon"
	"vipcast/internal/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("vipcastd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "/etc/vipcast/vipcast.toml", "configuration `file`")
	checkOnly := fs.Bool("check-config", false, "validate the configuration and exit")
	cleanup := fs.Bool("cleanup", false, "detach and remove the data plane this configuration's interface has, then exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	logFormat := fs.String("log-format", "text", "log format: text or json")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn or error")
	pinRoot := fs.String("pin-dir", daemon.DefaultPinRoot, "`directory` (on the BPF filesystem) for the pinned data plane, one subdirectory per interface")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "vipcastd: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "vipcastd", version.String())
		return 0
	}

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "vipcastd: -log-level %q: must be debug, info, warn or error\n", *logLevel)
		return 2
	}
	levelVar := new(slog.LevelVar) // `vipcast log-level` changes it at run time
	levelVar.Set(level)
	var handler slog.Handler
	switch *logFormat {
	case "text":
		handler = slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: levelVar})
	case "json":
		handler = slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: levelVar})
	default:
		fmt.Fprintf(stderr, "vipcastd: -log-format %q: must be text or json\n", *logFormat)
		return 2
	}
	logger := slog.New(handler)

	if *checkOnly || *cleanup {
		cfg, err := config.Load(*configPath)
		if err != nil {
			fmt.Fprintf(stderr, "vipcastd: %v\n", err)
			return 1
		}
		if *checkOnly {
			fmt.Fprintf(stdout, "%s: ok (%d VIPs, %d BGP peers)\n", *configPath, len(cfg.VIPs), len(cfg.BGP.Peers))
			return 0
		}
		if err := daemon.Cleanup(cfg, *pinRoot); err != nil {
			fmt.Fprintf(stderr, "vipcastd: cleanup: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "removed vipcast's data plane from %s\n", cfg.Interface)
		return 0
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	reload := make(chan struct{}, 1)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default: // one pending reload covers several signals
			}
		}
	}()

	err := daemon.Run(ctx, daemon.Options{
		ConfigPath: *configPath,
		Logger:     logger,
		Reload:     reload,
		Ready:      func() { notifySystemd("READY=1") },
		PinRoot:    *pinRoot,
		LogLevel:   levelVar,
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		logger.Error("vipcastd stopped", "err", err)
		return 1
	}
	return 0
}

// notifySystemd sends a state line to systemd's notify socket, when
// running under Type=notify (sd_notify(3)); a few lines, no library.
func notifySystemd(state string) {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return
	}
	if path[0] == '@' {
		path = "\x00" + path[1:] // abstract socket
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return
	}
	defer conn.Close()
	_, _ = conn.Write([]byte(state))
}
