package orders

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// DefaultMaxBody bounds a webhook body: Shopify's and WooCommerce's order
// payloads run to tens of kilobytes, a few hundred line items to a few
// megabytes.
const DefaultMaxBody = 4 << 20

// maxSiteLen bounds the site id taken from the path.
const maxSiteLen = 128

// SecretsFunc returns a site's webhook secrets for the handler's platform
// (more than one while a secret is being rotated). None, with a nil error,
// means the site takes no webhooks of that platform (or does not exist);
// an error means the secrets cannot be read now.
type SecretsFunc func(ctx context.Context, site string) ([]string, error)

// EnqueueFunc hands a verified, parsed change over for processing and
// returns once it is stored durably: the platform is answered 200 after
// it, and retries on an error.
type EnqueueFunc func(ctx context.Context, site string, c Change) error

// Outcome is how the handler answered one request, for metrics.
type Outcome string

// Outcomes of a webhook request.
const (
	OutcomeAccepted     Outcome = "accepted"     // 200, enqueued
	OutcomePing         Outcome = "ping"         // 200, WooCommerce's ping, nothing stored
	OutcomeIgnored      Outcome = "ignored"      // 200, a topic not read, nothing stored
	OutcomeUnauthorized Outcome = "unauthorized" // 401, no secret or a bad signature
	OutcomeMalformed    Outcome = "malformed"    // 400
	OutcomeTooLarge     Outcome = "too_large"    // 413
	OutcomeUnavailable  Outcome = "unavailable"  // 503, secrets or queue unreachable
	OutcomeBadMethod    Outcome = "bad_method"   // 405
)

// HandlerOptions configure a Handler.
type HandlerOptions struct {
	// Secrets and Enqueue are required.
	Secrets SecretsFunc
	Enqueue EnqueueFunc
	// MaxBody bounds the body (default DefaultMaxBody).
	MaxBody int64
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives one line per refused request (default: discard);
	// never a body, a header value or a secret.
	Logger *slog.Logger
	// Observe, when set, is told every request's outcome.
	Observe func(site string, src Source, o Outcome)
}

// Handler receives one platform's order webhooks for any site: it reads
// the body (bounded), verifies its signature with the site's secrets,
// parses it and enqueues the change, then answers. A bad or missing
// signature is 401 and nothing is stored; a malformed body is 400; a topic
// it does not read is 200 and nothing is stored (the platform would
// otherwise retry it); WooCommerce's unsigned ping is 200 when the site has
// a secret. Errors are JSON: {"error":{"code","message","field"}}.
type Handler struct {
	src  Source
	opts HandlerOptions
}

// NewHandler returns the Handler of src's webhooks.
func NewHandler(src Source, opts HandlerOptions) (*Handler, error) {
	var errs []error
	if src != Shopify && src != WooCommerce {
		errs = append(errs, fmt.Errorf("orders: unknown source %q", src))
	}
	if opts.Secrets == nil {
		errs = append(errs, errors.New("orders: HandlerOptions.Secrets is required"))
	}
	if opts.Enqueue == nil {
		errs = append(errs, errors.New("orders: HandlerOptions.Enqueue is required"))
	}
	if opts.MaxBody < 0 {
		errs = append(errs, errors.New("orders: HandlerOptions.MaxBody must not be negative"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if opts.MaxBody == 0 {
		opts.MaxBody = DefaultMaxBody
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Handler{src: src, opts: opts}, nil
}

// ServeHTTP serves a net/http ServeMux route with a {site} wildcard
// ("POST /webhooks/shopify/{site}"). Other routers call ServeSite (the
// gateway's, through Options.OrderWebhooks).
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.ServeSite(w, r, r.PathValue("site"))
}

// ServeSite serves a request for site.
func (h *Handler) ServeSite(w http.ResponseWriter, r *http.Request, site string) {
	o := h.serve(w, r, site)
	if h.opts.Observe != nil {
		h.opts.Observe(site, h.src, o)
	}
}

func (h *Handler) serve(w http.ResponseWriter, r *http.Request, site string) Outcome {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "", "use POST")
		return OutcomeBadMethod
	}
	if site == "" || len(site) > maxSiteLen {
		writeError(w, http.StatusUnauthorized, "unauthorized", "", "no webhook secret for this site")
		return OutcomeUnauthorized
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.opts.MaxBody))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", "", fmt.Sprintf("the body is over %d bytes", h.opts.MaxBody))
			return OutcomeTooLarge
		}
		writeError(w, http.StatusBadRequest, "invalid_body", "", "the body could not be read")
		return OutcomeMalformed
	}

	sigHeader, topicHeader, idHeader := HeaderShopifyHmac, HeaderShopifyTopic, HeaderShopifyWebhookID
	parse := ParseShopify
	if h.src == WooCommerce {
		sigHeader, topicHeader, idHeader = HeaderWooSignature, HeaderWooTopic, HeaderWooDeliveryID
		parse = ParseWooCommerce
	}
	signature := r.Header.Get(sigHeader)

	secrets, err := h.opts.Secrets(r.Context(), site)
	if err != nil {
		h.opts.Logger.Warn("order webhook: secrets unavailable", "site", site, "source", string(h.src), "err", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "", "try again later")
		return OutcomeUnavailable
	}
	if len(secrets) == 0 {
		h.opts.Logger.Info("order webhook refused: no secret for the site", "site", site, "source", string(h.src))
		writeError(w, http.StatusUnauthorized, "unauthorized", "", "no webhook secret for this site")
		return OutcomeUnauthorized
	}
	if h.src == WooCommerce && signature == "" && IsWooPing(body) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ping"})
		return OutcomePing
	}
	if !Verify(body, signature, secrets...) {
		h.opts.Logger.Info("order webhook refused: bad signature", "site", site, "source", string(h.src))
		writeError(w, http.StatusUnauthorized, "unauthorized", "", "the signature does not match the body under the site's webhook secret")
		return OutcomeUnauthorized
	}

	now := h.opts.Now()
	c, err := parse(strings.TrimSpace(r.Header.Get(topicHeader)), body, now)
	if errors.Is(err, ErrUnknownTopic) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ignored"})
		return OutcomeIgnored
	}
	if err != nil {
		field := ""
		var pe *PayloadError
		if errors.As(err, &pe) {
			field = pe.Field
		}
		msg := strings.ReplaceAll(err.Error(), "\n", "; ")
		h.opts.Logger.Info("order webhook refused: malformed", "site", site, "source", string(h.src), "err", msg)
		writeError(w, http.StatusBadRequest, "invalid_payload", field, msg)
		return OutcomeMalformed
	}
	c.DeliveryID = deliveryID(r.Header.Get(idHeader))
	if err := h.opts.Enqueue(r.Context(), site, c); err != nil {
		h.opts.Logger.Warn("order webhook: enqueue failed", "site", site, "source", string(h.src), "err", err)
		writeError(w, http.StatusServiceUnavailable, "unavailable", "", "try again later")
		return OutcomeUnavailable
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "accepted"})
	return OutcomeAccepted
}

// deliveryID returns a delivery id header's value when it is 1 to 128
// printable ASCII characters, else "".
func deliveryID(v string) string {
	v = strings.TrimSpace(v)
	if len(v) > 128 {
		return ""
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] >= 0x7f {
			return ""
		}
	}
	return v
}

func writeError(w http.ResponseWriter, status int, code, field, msg string) {
	type apiError struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Field   string `json:"field,omitempty"`
	}
	writeJSON(w, status, struct {
		Error apiError `json:"error"`
	}{apiError{code, msg, field}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
