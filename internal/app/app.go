// Package app is the gateway as one program: settings read from the
// environment in one place (ReadSettings), wired into the HTTP gateway, the
// configuration store, the durable queue and the dispatcher (New), and
// served until a context ends (Run).
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync/atomic"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/admin"
	"github.com/tagway/tagway/destinations"
	"github.com/tagway/tagway/gateway"
	"github.com/tagway/tagway/internal/authlimit"
	"github.com/tagway/tagway/internal/gctune"
	"github.com/tagway/tagway/pixeljs"
	"github.com/tagway/tagway/routing/config"
	"github.com/tagway/tagway/routing/dispatch"
	"github.com/tagway/tagway/routing/queue"
	"github.com/tagway/tagway/routing/queue/spool"
	"github.com/tagway/tagway/static"
)

// shutdownTimeout bounds graceful shutdown: in-flight requests first, then
// in-flight deliveries (whatever is not finished stays pending in Redis and
// is claimed again later).
const shutdownTimeout = 15 * time.Second

// Main is `tagway serve`: it reads the settings from getenv, logs JSON lines
// to stderr, and runs the gateway until ctx ends. It returns the process's
// exit code: 2 for bad settings, 1 when the gateway could not start or serve.
func Main(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "tagway serve: takes no arguments (configure with the environment)\n")
		return 2
	}
	s, err := ReadSettings(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "tagway: %v\n", err)
		return 2
	}
	logger := newLogger(stderr, s.LogLevel)
	// What the standard library prints with package log (net/http about a
	// cookie value it had to change, for one) goes through the same JSON
	// handler: every line of the log is JSON.
	slog.SetDefault(logger)
	if s.GCPercent > 0 {
		debug.SetGCPercent(s.GCPercent)
		if s.HeapMin > 0 {
			// It lives as long as this call (start-up failures included).
			tctx, stopTuner := context.WithCancel(ctx)
			defer stopTuner()
			tuner := gctune.New(gctune.Options{Floor: uint64(s.HeapMin), Base: s.GCPercent, Max: maxGCPercent, Set: debug.SetGCPercent})
			go tuner.Run(tctx, 100*time.Millisecond)
		}
	}
	if s.MemoryLimit > 0 {
		debug.SetMemoryLimit(s.MemoryLimit)
		logger.Info("Go memory limit set", "bytes", s.MemoryLimit)
	}
	a, err := New(ctx, s, logger)
	if err != nil {
		logger.Error("start-up failed", "err", err)
		return 1
	}
	defer a.Close()
	if err := a.Run(ctx); err != nil {
		logger.Error("serve", "err", err)
		return 1
	}
	return 0
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// App is one gateway: its listeners, Redis, configuration store, queue,
// dispatcher and HTTP handlers. Build it with New, run it with Run, and
// Close it when Run has returned (or was never called).
type App struct {
	logger     *slog.Logger
	rdb        redis.UniversalClient
	embedded   *miniredis.Miniredis
	store      *config.Store
	dispatcher *dispatch.Dispatcher
	handler    http.Handler
	// listener is the public port (TAGWAY_ADDR); ops serves /metrics,
	// /healthz and /readyz on opsListener, the operator's private listener
	// (TAGWAY_METRICS_ADDR), when set.
	listener    net.Listener
	ops         http.Handler
	opsListener net.Listener
	draining    atomic.Bool
	// queue is the intake, on its own client that never retries a write
	// (queueRdb), with the local spool when TAGWAY_DATA_DIR is set.
	queue      *queue.Queue
	queueRdb   redis.UniversalClient
	spool      *spool.Spool
	drainDelay time.Duration
	// dryRuns keeps the last requests dry-run destinations would have sent.
	dryRuns *destinations.Recorder
}

// New builds the gateway s describes and opens its listeners: it connects
// to Redis (or starts the embedded one), applies the configuration file or
// quick start, and builds tw.js. What it opened is released on error.
func New(ctx context.Context, s Settings, logger *slog.Logger) (*App, error) {
	a := &App{logger: logger, dryRuns: destinations.NewRecorder(100), drainDelay: s.Durability.DrainDelay}
	cfg, err := loadConfig(s)
	if err != nil {
		return nil, err
	}
	if s.Durability.RedisURL == "" {
		mr := miniredis.NewMiniRedis()
		if err := mr.StartAddr("127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("embedded redis: %w", err)
		}
		a.embedded = mr
		logger.Warn("REDIS_URL is not set: using an embedded in-process Redis. " +
			"Queued events, retries and dead letters live in memory and are LOST when tagway stops. " +
			"Set REDIS_URL for production.")
		a.rdb = redis.NewClient(&redis.Options{Addr: mr.Addr()})
		a.queueRdb = redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	} else {
		if a.rdb, err = newRedisClient(s.Durability, false); err != nil {
			return nil, err
		}
		if a.queueRdb, err = newRedisClient(s.Durability, true); err != nil {
			a.Close()
			return nil, err
		}
	}
	if a.spool, err = openSpool(s.Durability); err != nil {
		a.Close()
		return nil, err
	}
	a.queue = queue.New(a.queueRdb, queue.Options{Spool: a.spool, Logger: logger})

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if err := a.queue.Register(reg); err != nil {
		a.Close()
		return nil, err
	}

	a.store = config.NewStore(a.rdb, logger, storeOptions(s.Admin)...)
	if err := applyStartupConfig(ctx, a.store, s, cfg, logger); err != nil {
		a.Close()
		return nil, fmt.Errorf("apply config: %w", err)
	}
	deps := destinations.Deps{
		HTTP:   &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
		Logger: logger,
		Now:    time.Now,
		Record: a.dryRuns.Record,
	}
	var identity *dispatch.IdentityStore
	if s.Identity {
		identity = IdentityStore(a.queueRdb, s.Limits.IdentityMaxPerSite)
		if err := identity.Register(reg); err != nil {
			a.Close()
			return nil, err
		}
	}
	a.dispatcher, err = dispatch.New(a.rdb, a.store, registry(s), deps, dispatch.Options{
		Registerer:        reg,
		Logger:            logger,
		Retry:             dispatch.RetryPolicy{Base: s.RetryBase, Max: s.RetryMax},
		VisibilityTimeout: s.VisibilityTimeout,
		Limits:            dispatch.Limits{Concurrency: s.Durability.Concurrency, Rate: s.Durability.Rate},
		DeadLetters:       s.Limits.DeadLetters,
		Identity:          identity,
	})
	if err != nil {
		a.Close()
		return nil, err
	}
	script, err := pixeljs.New()
	if err != nil {
		a.Close()
		return nil, fmt.Errorf("build tw.js: %w", err)
	}
	logSitePaths(logger, cfg, s.Pixel)
	var demo http.Handler
	if s.Demo {
		demo = static.Handler()
	}
	// One back-off for every credential a client may guess: admin tokens,
	// ingest keys, the drop-in endpoint's access token.
	limiter := authlimit.New(authlimit.Options{})
	adminAPI, err := newAdminHandler(s, a.store, a.queue, dispatch.NewDeadLetterStore(a.queueRdb, nil), limiter, logger)
	if err != nil {
		a.Close()
		return nil, err
	}
	gw, err := gateway.New(gateway.Options{
		Enqueuer:       a.queue,
		Sites:          a.store,
		TrustedProxies: s.TrustedProxies,
		Logger:         logger,
		Now:            time.Now,
		Registerer:     reg,
		Gatherer:       reg,
		MetricsToken:   s.MetricsToken,
		AuthLimiter:    limiter,
		Script:         siteScripts{script},
		BasePath:       s.Pixel.BasePath,
		PathSecret:     []byte(s.Pixel.PathSecret),
		Static:         demo,
		Mounts:         []gateway.Mount{{Path: admin.Prefix, Handler: adminAPI}},
		Ready:          func(ctx context.Context) error { return a.rdb.Ping(ctx).Err() },
		Draining:       a.draining.Load,
		CountryHeader:  s.Admin.CountryHeader,
		RegionHeader:   s.Admin.RegionHeader,
	})
	if err != nil {
		a.Close()
		return nil, err
	}
	a.handler = gw.Handler()
	a.ops = gw.OpsHandler()
	if err := a.listen(s); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// listen opens the public listener and, when set, the private one of
// /metrics, /healthz and /readyz.
func (a *App) listen(s Settings) error {
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("TAGWAY_ADDR: %w", err)
	}
	a.listener = ln
	if s.MetricsAddr != "" {
		ops, err := net.Listen("tcp", s.MetricsAddr)
		if err != nil {
			return fmt.Errorf("TAGWAY_METRICS_ADDR: %w", err)
		}
		a.opsListener = ops
		a.logger.Info("metrics listening", "addr", ops.Addr().String())
	} else if s.MetricsToken == "" {
		a.logger.Info("metrics are off: set TAGWAY_METRICS_ADDR (a private listener, e.g. :9090) or TAGWAY_METRICS_TOKEN")
	}
	a.logger.Info("tagway listening", "addr", ln.Addr().String(), "demo", s.Demo)
	return nil
}

// Addr is the address of the public listener (TAGWAY_ADDR).
func (a *App) Addr() string { return a.listener.Addr().String() }

// OpsAddr is the address of the private listener (TAGWAY_METRICS_ADDR), or
// "" without one.
func (a *App) OpsAddr() string {
	if a.opsListener == nil {
		return ""
	}
	return a.opsListener.Addr().String()
}

// DryRuns returns the last request bodies that dry-run destinations would
// have sent, oldest first.
func (a *App) DryRuns() [][]byte { return a.dryRuns.Recent() }

// Run serves HTTP and runs the config watcher, the dispatcher and the spool's
// drain until ctx is done, then shuts down within shutdownTimeout: intake
// stops first (readyz turns false, the listener closes, in-flight requests
// finish), then deliveries drain. Call it once.
func (a *App) Run(ctx context.Context) error {
	srv := newHTTPServer(a.handler, a.logger)
	workCtx, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	done := make(chan error, 3)
	go func() { done <- a.store.Run(workCtx) }()
	go func() { done <- a.dispatcher.Run(workCtx) }()
	go func() { done <- a.queue.Run(workCtx) }() // drains the spool into Redis
	serveErr := make(chan error, 2)
	go func() { serveErr <- srv.Serve(a.listener) }()
	var opsSrv *http.Server
	if a.opsListener != nil {
		opsSrv = &http.Server{Handler: a.ops, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 10 * time.Second,
			WriteTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second, MaxHeaderBytes: 16 << 10}
		go func() { serveErr <- opsSrv.Serve(a.opsListener) }()
	}

	var err error
	select {
	case <-ctx.Done():
	case err = <-serveErr:
	}
	a.logger.Info("shutting down: intake stops, then deliveries drain")
	a.draining.Store(true)
	if d := a.drainDelay; d > 0 {
		// Load balancers see /readyz fail and stop sending before the
		// listener closes.
		time.Sleep(d)
	}
	shutCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(shutCtx); serr != nil {
		a.logger.Warn("http shutdown", "err", serr)
	}
	if opsSrv != nil {
		// Last, so that /readyz tells the draining to the end.
		defer opsSrv.Close()
	}
	stopWork()
	for range 3 {
		select {
		case werr := <-done:
			if werr != nil && !errors.Is(werr, context.Canceled) {
				a.logger.Warn("worker stopped", "err", werr)
			}
		case <-shutCtx.Done():
			a.logger.Warn("shutdown timed out; undelivered work stays pending in Redis")
			return err
		}
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// newHTTPServer is the server of handler, with tagway's timeouts and
// bounds; what net/http itself has to say (a handler's superfluous
// WriteHeader, an accept error) goes to logger, as JSON like every other
// line.
func newHTTPServer(handler http.Handler, logger *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// Close releases the listeners, Redis, the spool and the embedded server.
func (a *App) Close() {
	for _, ln := range []net.Listener{a.listener, a.opsListener} {
		if ln != nil {
			_ = ln.Close() // already closed after Run
		}
	}
	if a.rdb != nil {
		_ = a.rdb.Close()
	}
	if a.queueRdb != nil {
		_ = a.queueRdb.Close()
	}
	if a.spool != nil {
		_ = a.spool.Close()
	}
	if a.embedded != nil {
		a.embedded.Close()
	}
}

// IdentityStore is the identity store the dispatcher writes and reads each
// delivery round, on rdb (the gateway gives it the client that never
// retries), capped at maxPerSite visitors per site (0: the default cap). It
// is best effort: a Redis hiccup delays a round by 250ms at most, and the
// round goes out unenriched. `tagway bench -delivery` measures with it.
func IdentityStore(rdb redis.UniversalClient, maxPerSite int64) *dispatch.IdentityStore {
	return dispatch.NewIdentityStore(rdb, dispatch.IdentityOptions{Timeout: 250 * time.Millisecond, MaxPerSite: maxPerSite})
}
