package loadgen

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"time"
)

// BareHandler is the baseline the gateway is measured against: it reads
// the request body and answers 204, nothing else. Any Go HTTP service pays
// at least this much per request.
func BareHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 64<<10))
		w.WriteHeader(http.StatusNoContent)
	})
}

// Bare is a running bare handler on a loopback port.
type Bare struct {
	// URL is the base URL, http://127.0.0.1:<port>.
	URL string
	srv *http.Server
	err chan error
}

// StartBare serves BareHandler on a free loopback port with the same
// server timeouts the gateway uses. Close it when done.
func StartBare() (*Bare, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &Bare{
		URL: "http://" + ln.Addr().String(),
		srv: &http.Server{
			Handler:           BareHandler(),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       120 * time.Second,
		},
		err: make(chan error, 1),
	}
	go func() { b.err <- b.srv.Serve(ln) }()
	return b, nil
}

// Close stops the server within a few seconds.
func (b *Bare) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := b.srv.Shutdown(ctx)
	if serr := <-b.err; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
