// Package pixeljs builds and serves tagway's first-party browser script,
// tw.js.
//
// The readable source lives in src/ (plain modern JavaScript modules) and is
// embedded in the binary. Build bundles it with esbuild's Go API — minified,
// one IIFE, ES2017 — so neither building nor serving needs Node.
//
// The script is built per site options (Options), baked in: the consent
// default (granted, denied, wait: when the page has made no consent choice,
// the granted build still sends the visitor seed, so that the racing first
// requests of a new visitor get one _fbp, while the denied build stores and
// sends nothing and the wait build holds events until a choice), the collect
// endpoint relative to the script's URL, and the single-page-app and GA4
// dataLayer options; disabled features are removed from the build. New
// builds the three consent defaults' plain variants at start-up; For builds
// any other variant on first use and keeps it. Each variant is compressed
// once with brotli and gzip and served with its own strong ETag.
//
// The script's behaviour (the tagway(command, ...) API, the /collect body,
// the shared event_id with the Meta Pixel, the tagway:event DOM event) is
// documented in src/index.js and src/tracker.js.
package pixeljs

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/evanw/esbuild/pkg/api"
)

//go:embed src/*.js
var source embed.FS

// entry is the module esbuild starts from, relative to src/.
const entry = "index.js"

// The consent defaults a script is built for: the values of a site's
// consent_default.
const (
	ConsentGranted = "granted"
	ConsentDenied  = "denied"
	ConsentWait    = "wait"
)

// Options are the site settings a script variant is built for. The
// gateway's ScriptOptions has the same fields, so that one converts to the
// other.
type Options struct {
	// ConsentDefault is ConsentGranted, ConsentDenied or ConsentWait.
	ConsentDefault string
	// Collect is the collect endpoint relative to the script's URL: a
	// relative path such as "collect" (the default) or "../e/2b9f".
	Collect string
	// SPAPageViews records a PageView on history.pushState and popstate.
	SPAPageViews bool
	// DataLayer records the GA4 e-commerce events of window.dataLayer.
	DataLayer bool
}

// Defaults returns the options of a site with this consent default and no
// other setting: /collect next to the script, SPA page views on, no GA4
// dataLayer mapping.
func Defaults(consentDefault string) Options {
	return Options{ConsentDefault: consentDefault, Collect: "collect", SPAPageViews: true}
}

// maxVariants bounds the variants For keeps; past it, the oldest built are
// forgotten (and rebuilt when asked for again).
const maxVariants = 256

var collectPattern = regexp.MustCompile(`^[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$`)

// Check reports what is wrong with o.
func (o Options) Check() error {
	var errs []error
	switch o.ConsentDefault {
	case ConsentGranted, ConsentDenied, ConsentWait:
	default:
		errs = append(errs, fmt.Errorf("consent default %q is not granted, denied or wait", o.ConsentDefault))
	}
	if len(o.Collect) > 256 || !collectPattern.MatchString(o.Collect) {
		errs = append(errs, fmt.Errorf("collect %q is not a relative path", o.Collect))
	}
	return errors.Join(errs...)
}

// Build bundles the embedded source into the minified script for one consent
// default (ConsentGranted, ConsentDenied or ConsentWait) and the other
// options' defaults.
func Build(consentDefault string) ([]byte, error) { return BuildFor(Defaults(consentDefault)) }

// BuildFor bundles the embedded source into the minified script for o. The
// output depends only on the source and o, so every replica serves the same
// bytes and the same ETag.
func BuildFor(o Options) ([]byte, error) {
	if err := o.Check(); err != nil {
		return nil, fmt.Errorf("pixeljs: build: %w", err)
	}
	src, err := fs.Sub(source, "src")
	if err != nil {
		return nil, err
	}
	res := api.Build(api.BuildOptions{
		EntryPoints:       []string{entry},
		Bundle:            true,
		Write:             false,
		Format:            api.FormatIIFE,
		Platform:          api.PlatformBrowser,
		Target:            api.ES2017,
		MinifyWhitespace:  true,
		MinifyIdentifiers: true,
		MinifySyntax:      true,
		LegalComments:     api.LegalCommentsNone,
		Charset:           api.CharsetUTF8,
		LogLevel:          api.LogLevelSilent,
		Define: map[string]string{
			"__TW_CONSENT_DEFAULT__": strconv.Quote(o.ConsentDefault),
			"__TW_COLLECT__":         strconv.Quote(o.Collect),
			"__TW_SPA__":             strconv.FormatBool(o.SPAPageViews),
			"__TW_DATALAYER__":       strconv.FormatBool(o.DataLayer),
		},
		Plugins: []api.Plugin{embedded(src)},
	})
	if len(res.Errors) > 0 {
		errs := make([]error, 0, len(res.Errors))
		for _, m := range res.Errors {
			errs = append(errs, buildError(m))
		}
		return nil, fmt.Errorf("pixeljs: build: %w", errors.Join(errs...))
	}
	if len(res.OutputFiles) != 1 {
		return nil, fmt.Errorf("pixeljs: build: %d output files, want 1", len(res.OutputFiles))
	}
	return res.OutputFiles[0].Contents, nil
}

func buildError(m api.Message) error {
	if m.Location == nil {
		return errors.New(m.Text)
	}
	return fmt.Errorf("%s:%d:%d: %s", m.Location.File, m.Location.Line, m.Location.Column, m.Text)
}

// embedded is an esbuild plugin that resolves and loads modules from fsys
// only: relative imports between the embedded files, nothing from disk or
// from a package registry.
func embedded(fsys fs.FS) api.Plugin {
	const ns = "tagway-src"
	return api.Plugin{
		Name: "embedded",
		Setup: func(b api.PluginBuild) {
			b.OnResolve(api.OnResolveOptions{Filter: `.*`}, func(a api.OnResolveArgs) (api.OnResolveResult, error) {
				if a.Kind == api.ResolveEntryPoint {
					return api.OnResolveResult{Path: a.Path, Namespace: ns}, nil
				}
				if !strings.HasPrefix(a.Path, "./") && !strings.HasPrefix(a.Path, "../") {
					return api.OnResolveResult{}, fmt.Errorf("import %q: only relative imports of src/ files are allowed", a.Path)
				}
				p := path.Join(path.Dir(a.Importer), a.Path)
				if !fs.ValidPath(p) {
					return api.OnResolveResult{}, fmt.Errorf("import %q: outside src/", a.Path)
				}
				return api.OnResolveResult{Path: p, Namespace: ns}, nil
			})
			b.OnLoad(api.OnLoadOptions{Filter: `.*`, Namespace: ns}, func(a api.OnLoadArgs) (api.OnLoadResult, error) {
				data, err := fs.ReadFile(fsys, a.Path)
				if err != nil {
					return api.OnLoadResult{}, err
				}
				s := string(data)
				return api.OnLoadResult{Contents: &s, Loader: api.LoaderJS}, nil
			})
		},
	}
}

// Script holds the built script variants. It is safe for concurrent use.
type Script struct {
	mu       sync.Mutex
	variants map[Options]*variant
	order    []Options // build order, for eviction
}

// variant serves the script built for one consent default. It is immutable
// and safe for concurrent use.
type variant struct {
	encodings [3]encoded // indexed by encoding
}

// encoded is one stored representation of a variant.
type encoded struct {
	body     []byte
	etag     string // quoted, strong
	encoding string // Content-Encoding value, "" for identity
}

// Encodings, in order of preference when the client accepts several.
const (
	identity = iota
	gzipped
	brotlied
)

// New builds the script for each consent default with the other options'
// defaults, so that a broken build fails at start-up.
func New() (*Script, error) {
	s := &Script{variants: map[Options]*variant{}}
	for _, d := range []string{ConsentGranted, ConsentDenied, ConsentWait} {
		if _, err := s.get(Defaults(d)); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// get returns the variant for o, building it on first use.
func (s *Script) get(o Options) (*variant, error) {
	s.mu.Lock()
	v, ok := s.variants[o]
	s.mu.Unlock()
	if ok {
		return v, nil
	}
	raw, err := BuildFor(o)
	if err != nil {
		return nil, err
	}
	if v, err = newVariant(raw); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.variants[o]; ok { // built twice at once: keep one
		return old, nil
	}
	if len(s.order) >= maxVariants {
		delete(s.variants, s.order[0])
		s.order = s.order[1:]
	}
	s.variants[o] = v
	s.order = append(s.order, o)
	return v, nil
}

// newVariant compresses raw with gzip and brotli and tags each representation.
func newVariant(raw []byte) (*variant, error) {
	sum := sha256.Sum256(raw)
	tag := hex.EncodeToString(sum[:16])

	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	var br bytes.Buffer
	bw := brotli.NewWriterLevel(&br, brotli.BestCompression)
	if _, err := bw.Write(raw); err != nil {
		return nil, err
	}
	if err := bw.Close(); err != nil {
		return nil, err
	}

	// One strong ETag per representation (RFC 9110 §8.8.3): the hash of the
	// variant's script, suffixed with the content coding, since the bytes
	// differ. Variants differ in their bytes, hence in their tags too.
	v := &variant{}
	v.encodings[identity] = encoded{body: raw, etag: `"` + tag + `"`}
	v.encodings[gzipped] = encoded{body: gz.Bytes(), etag: `"` + tag + `-gz"`, encoding: "gzip"}
	v.encodings[brotlied] = encoded{body: br.Bytes(), etag: `"` + tag + `-br"`, encoding: "br"}
	return v, nil
}

// ForConsentDefault returns the variant built for a site's consent default
// (ConsentGranted, ConsentDenied or ConsentWait) with the other options'
// defaults. Any other value gets the wait variant, the most private: it
// sends nothing before the page chooses.
func (s *Script) ForConsentDefault(consentDefault string) http.Handler {
	return s.For(Defaults(consentDefault))
}

// For returns the variant built for o, building it on first use. An
// unknown consent default gets the wait variant; an unusable Collect gets
// "collect".
func (s *Script) For(o Options) http.Handler {
	switch o.ConsentDefault {
	case ConsentGranted, ConsentDenied:
	default:
		o.ConsentDefault = ConsentWait
	}
	if !collectPattern.MatchString(o.Collect) || len(o.Collect) > 256 {
		o.Collect = "collect"
	}
	v, err := s.get(o)
	if err != nil {
		// Only a broken embedded source fails, and New has built it once.
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			_, _ = w.Write([]byte(`{"error":{"code":"internal","message":"the script could not be built"}}` + "\n"))
		})
	}
	return v
}

// ServeHTTP serves the granted variant, the default of the quick start, for
// a server that hosts the script without knowing sites (such as the demo
// shop's tests). The gateway serves each site its own variant through For.
func (s *Script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.ForConsentDefault(ConsentGranted).ServeHTTP(w, r)
}

// ServeHTTP answers GET and HEAD with the script: brotli or gzip as the
// client accepts, a strong ETag with If-None-Match answered 304, and a short
// public cache lifetime.
//
// The lifetime is 5 minutes because the script's URL is not versioned: stores
// paste a fixed <script src=".../tw.js"> once, so a long max-age would pin an
// old script in browsers and CDNs for as long. Five minutes bounds how long a
// new release (or a site's new consent default) takes to reach every
// visitor; after that a revalidation costs a 304 with no body.
func (v *variant) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusMethodNotAllowed)
		_, _ = w.Write([]byte(`{"error":{"code":"method_not_allowed","message":"use GET or HEAD"}}` + "\n"))
		return
	}
	e := &v.encodings[negotiate(r.Header.Values("Accept-Encoding"))]
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("Vary", "Accept-Encoding")
	h.Set("ETag", e.etag)
	if ifNoneMatch(r.Header.Values("If-None-Match"), e.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", "application/javascript; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	if e.encoding != "" {
		h.Set("Content-Encoding", e.encoding)
	}
	h.Set("Content-Length", strconv.Itoa(len(e.body)))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(e.body)
	}
}

// negotiate picks the encoding from Accept-Encoding: brotli, then gzip, then
// identity. A coding with q=0 is refused; "*" stands for the codings not
// named.
func negotiate(headers []string) int {
	accepted := map[string]bool{}
	for _, h := range headers {
		for part := range strings.SplitSeq(h, ",") {
			name, params, _ := strings.Cut(part, ";")
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "x-gzip" {
				name = "gzip"
			}
			if name != "" {
				accepted[name] = qualityAboveZero(params)
			}
		}
	}
	ok := func(coding string) bool {
		if v, named := accepted[coding]; named {
			return v
		}
		return accepted["*"]
	}
	switch {
	case ok("br"):
		return brotlied
	case ok("gzip"):
		return gzipped
	default:
		return identity
	}
}

// qualityAboveZero reports whether the parameters of one Accept-Encoding
// element leave it acceptable: no q, or a q above zero.
func qualityAboveZero(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(k), "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return err == nil && q > 0
		}
	}
	return true
}

// ifNoneMatch reports whether If-None-Match matches etag, with the weak
// comparison RFC 9110 §13.1.2 asks for (proxies that compress often weaken
// ETags with W/).
func ifNoneMatch(headers []string, etag string) bool {
	for _, h := range headers {
		for t := range strings.SplitSeq(h, ",") {
			t = strings.TrimSpace(t)
			if t == "*" || strings.TrimPrefix(t, "W/") == etag {
				return true
			}
		}
	}
	return false
}

var (
	_ http.Handler = (*Script)(nil)
	_ http.Handler = (*variant)(nil)
)
