// Command vipcast controls vipcastd, the vipcast load balancer; see
// vipcast/cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"vipcast/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, cli.NewRootCommand(os.Stdout, os.Stderr))
	stop()
	os.Exit(code)
}
