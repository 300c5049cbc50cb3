package main

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
	"github.com/tagway/tagway/destinations/meta"
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

func cmdServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "tagway serve: takes no arguments (configure with the environment)\n")
		return 2
	}
	s, err := readSettings(getenv)
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
	a, err := newApp(ctx, s, logger)
	if err != nil {
		logger.Error("start-up failed", "err", err)
		return 1
	}
	defer a.Close()
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		logger.Error("listen", "addr", s.Addr, "err", err)
		return 1
	}
	if s.MetricsAddr != "" {
		ops, err := net.Listen("tcp", s.MetricsAddr)
		if err != nil {
			ln.Close()
			logger.Error("listen", "addr", s.MetricsAddr, "err", err)
			return 1
		}
		a.opsListener = ops
		logger.Info("metrics listening", "addr", ops.Addr().String())
	} else if s.MetricsToken == "" {
		logger.Info("metrics are off: set TAGWAY_METRICS_ADDR (a private listener, e.g. :9090) or TAGWAY_METRICS_TOKEN")
	}
	logger.Info("tagway listening", "addr", ln.Addr().String(), "demo", s.Demo)
	if err := a.Serve(ctx, ln); err != nil {
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

// app is one running gateway: its Redis, config store, queue, dispatcher and
// HTTP handler.
type app struct {
	logger     *slog.Logger
	rdb        redis.UniversalClient
	embedded   *miniredis.Miniredis
	store      *config.Store
	dispatcher *dispatch.Dispatcher
	handler    http.Handler
	// ops serves /metrics, /healthz and /readyz on opsListener, the
	// operator's private listener (TAGWAY_METRICS_ADDR), when set.
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

// registry lists every destination adapter tagway ships, each with the
// operator's base URLs of its platform's APIs (from the environment; the
// adapters' defaults where they are empty). Explicit, no init().
func registry(s settings) destinations.Registry {
	return destinations.Registry{
		"meta": destinations.WithAPIURLs(meta.New, map[string]string{meta.GraphURLSetting: s.MetaGraphURL}),
	}
}

func newApp(ctx context.Context, s settings, logger *slog.Logger) (*app, error) {
	a := &app{logger: logger, dryRuns: destinations.NewRecorder(100), drainDelay: s.Durability.DrainDelay}
	cfg, err := loadConfig(s)
	if err != nil {
		return nil, err
	}
	if s.RedisURL == "" {
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
		if a.rdb, err = newRedisClient(s.RedisURL, s.Durability, false); err != nil {
			return nil, err
		}
		if a.queueRdb, err = newRedisClient(s.RedisURL, s.Durability, true); err != nil {
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
		identity = identityStore(a.queueRdb, s.Limits.IdentityMaxPerSite)
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
		// Identities are stored and read per delivery round
		// (dispatch.IdentityStore), best effort: on the non-retrying client
		// with a short bound, so a Redis hiccup delays a round by 250ms at
		// most, and the round goes out unenriched.
		Identity: identity,
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
	return a, nil
}

// Serve runs the HTTP server, the config watcher and the dispatcher until ctx
// is done, then shuts down: intake stops first (readyz turns false, the
// listener closes, in-flight requests finish), then deliveries drain.
func (a *app) Serve(ctx context.Context, ln net.Listener) error {
	srv := newHTTPServer(a.handler, a.logger)
	workCtx, stopWork := context.WithCancel(context.Background())
	defer stopWork()
	done := make(chan error, 3)
	go func() { done <- a.store.Run(workCtx) }()
	go func() { done <- a.dispatcher.Run(workCtx) }()
	go func() { done <- a.queue.Run(workCtx) }() // drains the spool into Redis
	serveErr := make(chan error, 2)
	go func() { serveErr <- srv.Serve(ln) }()
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

// Close releases Redis and the embedded server.
func (a *app) Close() {
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

// identityStore is the identity store the dispatcher writes and reads
// (`tagway bench -delivery` measures with the same).
func identityStore(rdb redis.UniversalClient, maxPerSite int64) *dispatch.IdentityStore {
	return dispatch.NewIdentityStore(rdb, dispatch.IdentityOptions{Timeout: 250 * time.Millisecond, MaxPerSite: maxPerSite})
}
