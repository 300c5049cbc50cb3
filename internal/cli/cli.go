// Package cli holds tagway's commands other than serve: the control plane
// (sites, routes, apply, export, audit...: a client of the admin API),
// deadletters (straight on Redis), bench (the load generator) and
// healthcheck. main dispatches to them; what they need of the gateway
// itself (its Redis set-up, its identity store) main hands over, so that
// nothing here imports internal/app.
package cli

// Usage is what `tagway help` prints.
const Usage = `Usage: tagway [command]

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
