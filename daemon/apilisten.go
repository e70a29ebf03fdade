package daemon

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"

	"google.golang.org/grpc"

	"vipcast/api"
	"vipcast/config"
)

// apiListener serves the management API on its unix socket.
type apiListener struct {
	srv  *grpc.Server
	ln   net.Listener
	path string
	done chan error
}

// listenAPI replaces a stale socket, listens, sets the socket's mode and
// group, and serves.
func listenAPI(cfg config.API, impl api.VipcastServer, log *slog.Logger) (*apiListener, error) {
	path := cfg.Socket
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("api socket directory: %w", err)
	}
	// A socket left by a killed daemon: nobody listens on it any more.
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode()&os.ModeSocket == 0 {
			return nil, fmt.Errorf("api socket %s exists and is not a socket; not removing it", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("api socket %s: another vipcastd is listening on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("remove stale api socket %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("api socket %s: %w", path, err)
	}
	if err := os.Chmod(path, cfg.SocketMode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("api socket mode: %w", err)
	}
	if cfg.SocketGroup != "" {
		grp, err := user.LookupGroup(cfg.SocketGroup)
		switch {
		case err == nil:
			gid, _ := strconv.Atoi(grp.Gid)
			if err := os.Chown(path, -1, gid); err != nil {
				ln.Close()
				return nil, fmt.Errorf("api socket group %s: %w", cfg.SocketGroup, err)
			}
		case errors.As(err, new(user.UnknownGroupError)):
			log.Warn("api socket group does not exist; only root can use the API", "group", cfg.SocketGroup, "component", "api")
		default:
			ln.Close()
			return nil, fmt.Errorf("api socket group %s: %w", cfg.SocketGroup, err)
		}
	}
	srv := grpc.NewServer()
	api.RegisterVipcastServer(srv, impl)
	l := &apiListener{srv: srv, ln: ln, path: path, done: make(chan error, 1)}
	go func() { l.done <- srv.Serve(ln) }()
	log.Info("api listening", "socket", path, "component", "api")
	return l, nil
}

func (l *apiListener) close() error {
	l.srv.GracefulStop()
	<-l.done
	if err := os.Remove(l.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}
