// Command tagway is a self-hosted, server-side tag gateway with a first-party
// pixel. `tagway` (or `tagway serve`) runs the gateway; see README.md.
//
// This file only wires the packages together: it reads the environment and
// flags, builds the registry of destination adapters, and handles signals.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run dispatches a subcommand and returns the process exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && args[0] != "" && (args[0][0] != '-' || isHelpFlag(args[0])) {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return cmdServe(ctx, args, getenv, stderr)
	case "healthcheck":
		return cmdHealthcheck(ctx, getenv, stderr)
	case "bench":
		return cmdBench(ctx, args, stdout, stderr)
	case "deadletters":
		return cmdDeadletters(ctx, args, getenv, stdout, stderr)
	case "tenants", "sites", "destinations", "routes", "keys", "apply", "export", "send-test", "test-results", "audit", "rotate-ingest-key":
		return cmdAdmin(ctx, cmd, args, getenv, os.Stdin, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "tagway", version)
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "tagway: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

// isHelpFlag reports whether arg asks for the usage (tagway -h, --help).
func isHelpFlag(arg string) bool { return arg == "-h" || arg == "-help" || arg == "--help" }

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `Usage: tagway [command]

Commands:
  serve        run the gateway (the default when no command is given)
  healthcheck  probe /healthz of the gateway on TAGWAY_ADDR (for container HEALTHCHECK)
  bench        load-test a local gateway against a bare net/http handler (see BENCHMARKS.md)
  deadletters  list, replay or drop dead letters straight in Redis, set up as for serve (tagway deadletters -h)
  version      print the version
  help         show this help

` + adminUsage + `

The gateway is configured from the environment; see README.md.
`
