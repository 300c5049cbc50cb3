// Command tagway is a self-hosted, server-side tag gateway with a first-party
// pixel. `tagway` (or `tagway serve`) runs the gateway; see README.md.
//
// This file handles signals and picks the command: serve is the gateway
// (internal/app), every other command lives in internal/cli. The gateway's
// settings are read from the environment by internal/app.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/tagway/tagway/internal/app"
	"github.com/tagway/tagway/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run dispatches a command and returns the process exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && (args[0][0] != '-' || isHelpFlag(args[0])) {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return app.Main(ctx, args, getenv, stderr)
	case "healthcheck":
		return cli.Healthcheck(ctx, getenv, stderr)
	case "bench":
		return cli.Bench(ctx, args, getenv, app.IdentityStore, stdout, stderr)
	case "deadletters":
		return cli.Deadletters(ctx, args, getenv, app.RedisClient, stdout, stderr)
	case "tenants", "sites", "destinations", "routes", "keys", "apply", "export", "send-test", "test-results", "audit", "rotate-ingest-key":
		return cli.Admin(ctx, cmd, args, getenv, stdin, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "tagway", version)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, cli.Usage)
		return 0
	default:
		fmt.Fprintf(stderr, "tagway: unknown command %q\n\n%s", cmd, cli.Usage)
		return 2
	}
}

// isHelpFlag reports whether arg asks for the usage (tagway -h, --help).
func isHelpFlag(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"
