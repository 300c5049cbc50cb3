package platform

import (
	"bytes"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
)

// Redacted is what a Redactor writes in place of a secret.
const Redacted = "[redacted]"

// Redactor keeps secrets out of text: each secret, as it is and as a URL
// query, a URL path or a JSON string escapes it, becomes Redacted. A nil
// Redactor removes nothing. A Redactor is immutable and safe for concurrent
// use.
type Redactor struct {
	shown   []string // old, new pairs, replaced ahead of the secrets
	secrets []string
	r       *strings.Replacer
}

// NewRedactor returns a Redactor of secrets; empty ones are skipped.
func NewRedactor(secrets ...string) *Redactor {
	return (&Redactor{}).With(secrets...)
}

// With returns a Redactor of r's secrets and more; r is unchanged.
func (r *Redactor) With(secrets ...string) *Redactor {
	n := &Redactor{}
	if r != nil {
		n.shown, n.secrets = slices.Clone(r.shown), slices.Clone(r.secrets)
	}
	for _, s := range secrets {
		if s != "" {
			n.secrets = append(n.secrets, s)
		}
	}
	n.build()
	return n
}

// ShowAs returns a Redactor that writes shown wherever s appears (a URL
// that holds a secret, by the URL without it), ahead of removing the
// secrets; r is unchanged.
func (r *Redactor) ShowAs(s, shown string) *Redactor {
	n := r.With()
	if s != "" {
		n.shown = append(n.shown, s, shown)
		n.build()
	}
	return n
}

func (r *Redactor) build() {
	pairs := slices.Clone(r.shown)
	for _, s := range r.secrets {
		for _, form := range forms(s) {
			pairs = append(pairs, form, Redacted)
		}
	}
	r.r = nil
	if len(pairs) > 0 {
		r.r = strings.NewReplacer(pairs...)
	}
}

// forms lists s and its escaped forms, each once.
func forms(s string) []string {
	out := []string{s}
	add := func(f string) {
		if f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	add(url.QueryEscape(s))
	add(url.PathEscape(s))
	add(jsonEscape(s, true))
	add(jsonEscape(s, false))
	return out
}

// jsonEscape is s as a JSON string escapes it, without the quotes.
func jsonEscape(s string, escapeHTML bool) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(escapeHTML)
	if enc.Encode(s) != nil {
		return ""
	}
	js := b.Bytes() // "...", then a newline
	return string(js[1 : len(js)-2])
}

// Redact drops the invalid UTF-8 of s, then removes the secrets from it.
// Dropping comes first: an invalid byte inside an echoed secret would hide
// it from the replacement and vanish afterwards, joining its halves.
func (r *Redactor) Redact(s string) string {
	s = strings.ToValidUTF8(s, "")
	if r == nil || r.r == nil {
		return s
	}
	return r.r.Replace(s)
}

// Snippet is s redacted, cut to at most n bytes of valid UTF-8 and trimmed:
// what of an answer a message quotes. Redacting before cutting leaves no
// part of a secret.
func (r *Redactor) Snippet(s string, n int) string {
	s = r.Redact(s)
	return strings.TrimSpace(strings.ToValidUTF8(s[:min(len(s), n)], ""))
}
