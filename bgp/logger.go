package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// slogAdapter implements GoBGP's log.Logger on top of slog.
//
// GoBGP's default logger (logrus) exits the process on Fatal and panics on
// Panic. In v3.37 those are called from:
//   - server.NewBgpServer, when the gRPC API cannot listen (Fatal, in a
//     goroutine, so nothing else would ever report it);
//   - BgpServer.handleFSMMessage on an unknown FSM message type (Fatal);
//   - the FSM handlers on an impossible admin-state transition (Panic,
//     "code logic bug");
//   - table.Table.validatePath on internal invariant violations (Fatal);
//   - RoutingPolicy.Reset when a policy cannot be built (Fatal, then it
//     returns the error too);
//   - pkg/config (the gobgpd config-file loader), which vipcast does not use.
//
// In every one of those places the code carries on (or returns) if the
// logger call returns, so this adapter never exits or panics: it logs at
// ERROR with gobgp_fatal=true and hands the event to onFatal, which the
// Speaker turns into an error on Speaker.Errors() (and, during Start,
// into Start's return value). A real Go panic inside one of GoBGP's own
// goroutines (a nil dereference, say) cannot be recovered from outside
// and still crashes the process with a stack trace — loudly, not silently.
type slogAdapter struct {
	log     *slog.Logger
	level   atomic.Uint32 // a gobgplog.LogLevel
	onFatal func(msg string, fields gobgplog.Fields)
}

func newSlogAdapter(l *slog.Logger, onFatal func(string, gobgplog.Fields)) *slogAdapter {
	a := &slogAdapter{log: l, onFatal: onFatal}
	// GoBGP checks GetLevel before building expensive debug lines, so
	// report Debug only when the handler would actually print it.
	lvl := gobgplog.InfoLevel
	if l.Enabled(context.Background(), slog.LevelDebug) {
		lvl = gobgplog.DebugLevel
	}
	a.level.Store(uint32(lvl))
	return a
}

func (a *slogAdapter) emit(level slog.Level, msg string, fields gobgplog.Fields, extra ...slog.Attr) {
	ctx := context.Background()
	if !a.log.Enabled(ctx, level) {
		return
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	attrs := make([]slog.Attr, 0, len(keys)+len(extra))
	attrs = append(attrs, extra...)
	for _, k := range keys {
		v := fields[k]
		if err, ok := v.(error); ok {
			v = err.Error()
		}
		attrs = append(attrs, slog.Any(strings.ToLower(k), v))
	}
	a.log.LogAttrs(ctx, level, msg, attrs...)
}

func (a *slogAdapter) Panic(msg string, fields gobgplog.Fields) {
	a.emit(slog.LevelError, msg, fields, slog.Bool("gobgp_fatal", true), slog.String("gobgp_level", "panic"))
	if a.onFatal != nil {
		a.onFatal(msg, fields)
	}
}

func (a *slogAdapter) Fatal(msg string, fields gobgplog.Fields) {
	a.emit(slog.LevelError, msg, fields, slog.Bool("gobgp_fatal", true), slog.String("gobgp_level", "fatal"))
	if a.onFatal != nil {
		a.onFatal(msg, fields)
	}
}

func (a *slogAdapter) Error(msg string, fields gobgplog.Fields) {
	a.emit(slog.LevelError, msg, fields)
}

func (a *slogAdapter) Warn(msg string, fields gobgplog.Fields) {
	if a.GetLevel() >= gobgplog.WarnLevel {
		a.emit(slog.LevelWarn, msg, fields)
	}
}

func (a *slogAdapter) Info(msg string, fields gobgplog.Fields) {
	if a.GetLevel() >= gobgplog.InfoLevel {
		a.emit(slog.LevelInfo, msg, fields)
	}
}

func (a *slogAdapter) Debug(msg string, fields gobgplog.Fields) {
	if a.GetLevel() >= gobgplog.DebugLevel {
		a.emit(slog.LevelDebug, msg, fields)
	}
}

// SetLevel is what `gobgp global log-level` reaches through the API.
func (a *slogAdapter) SetLevel(level gobgplog.LogLevel) { a.level.Store(uint32(level)) }

func (a *slogAdapter) GetLevel() gobgplog.LogLevel { return gobgplog.LogLevel(a.level.Load()) }

// fatalError renders a GoBGP fatal call as an error value.
func fatalError(msg string, fields gobgplog.Fields) error {
	for _, k := range []string{"Err", "Error"} {
		if err, ok := fields[k].(error); ok {
			return fmt.Errorf("bgp: gobgp fatal: %s: %w", msg, err)
		}
	}
	return fmt.Errorf("bgp: gobgp fatal: %s %v", msg, map[string]any(fields))
}
