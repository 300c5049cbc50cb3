package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/tagway/tagway/routing/model"
)

const adminUsage = `Control plane (talks to the admin API at TAGWAY_URL with TAGWAY_TOKEN):
  tenants|sites|destinations|routes|keys list [--site S]
  tenants|sites|destinations|routes|keys get ID
  tenants|sites|destinations|routes|keys apply -f resource.yaml
  tenants|sites|destinations|routes|keys delete ID
  apply -f config.yaml [--dry-run] [--prune]   make a config file true (idempotent)
  export [-o file]                             the configuration you can see, secrets redacted
  send-test --site S [--event Purchase] [--test-event-code CODE]
  test-results ROUTE                           last test-mode deliveries of a route
  audit [--limit N]                            recent changes
  rotate-ingest-key SITE [--overlap 24h]       new ingest key; the old one works for the overlap
`

// adminClient calls the admin API.
type adminClient struct {
	base  string
	token string
	http  *http.Client
}

// apiFailure is an error answer of the admin API.
type apiFailure struct {
	Status int
	Body   struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
			Field   string `json:"field"`
			Details []struct {
				Field   string `json:"field"`
				Message string `json:"message"`
			} `json:"details"`
		} `json:"error"`
	}
}

func (f *apiFailure) Error() string {
	e := f.Body.Error
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s: %s", f.Status, e.Code, e.Message)
	if e.Field != "" {
		fmt.Fprintf(&b, " (field %s)", e.Field)
	}
	for _, d := range e.Details {
		fmt.Fprintf(&b, "\n  %s: %s", d.Field, d.Message)
	}
	return b.String()
}

// call sends a request; out receives a 2xx JSON answer. It returns the
// answer's headers.
func (c *adminClient) call(ctx context.Context, method, path string, body any, out any, header ...string) (http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.base, "/")+"/admin/v1"+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 300 {
		f := &apiFailure{Status: resp.StatusCode}
		if json.Unmarshal(raw, &f.Body) != nil || f.Body.Error.Code == "" {
			f.Body.Error.Code, f.Body.Error.Message = "http_error", strings.TrimSpace(string(raw))
		}
		return resp.Header, f
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return nil, fmt.Errorf("the answer is not JSON: %w", err)
		}
	}
	return resp.Header, nil
}

// Admin runs the control-plane command cmd (sites, routes, apply, audit...)
// against the admin API at TAGWAY_URL with TAGWAY_TOKEN, and returns the
// exit code: 2 for a usage error, 1 for a failure.
func Admin(ctx context.Context, cmd string, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &adminClient{base: getenv("TAGWAY_URL"), token: getenv("TAGWAY_TOKEN"), http: &http.Client{Timeout: 60 * time.Second}}
	if c.base == "" {
		c.base = "http://localhost:8080"
	}
	if c.token == "" {
		fmt.Fprintln(stderr, "tagway: set TAGWAY_TOKEN to the admin token (TAGWAY_ADMIN_TOKEN of the gateway, or a tenant key)")
		return 2
	}
	var err error
	switch cmd {
	case "apply":
		err = c.applyConfig(ctx, args, stdin, stdout)
	case "export":
		err = c.export(ctx, args, stdout)
	case "send-test":
		err = c.sendTest(ctx, args, stdout)
	case "test-results":
		err = c.simpleGet(ctx, args, "test-results ROUTE", func(id string) string { return "/routes/" + url.PathEscape(id) + "/test-results" }, stdout)
	case "audit":
		err = c.audit(ctx, args, stdout)
	case "rotate-ingest-key":
		err = c.rotate(ctx, args, stdout)
	default:
		err = c.resource(ctx, cmd, args, stdin, stdout)
	}
	var usage usageError
	switch {
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "tagway %s: %s\n\n%s", cmd, usage, adminUsage)
		return 2
	case err != nil:
		fmt.Fprintf(stderr, "tagway %s: %v\n", cmd, err)
		return 1
	}
	return 0
}

type usageError string

func (u usageError) Error() string { return string(u) }

// resource runs list, get, apply and delete on one kind.
func (c *adminClient) resource(ctx context.Context, kind string, args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError("want list, get, apply or delete")
	}
	verb, args := args[0], args[1:]
	fs := flag.NewFlagSet(kind+" "+verb, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	site := fs.String("site", "", "only this site's (list)")
	file := fs.String("f", "", "the resource file, YAML or JSON; - for stdin (apply)")
	if err := fs.Parse(args); err != nil {
		return usageError(err.Error())
	}
	switch verb {
	case "list":
		path := "/" + kind + "?limit=200"
		if *site != "" {
			path += "&site=" + url.QueryEscape(*site)
		}
		var all []map[string]any
		for {
			var page struct {
				Items      []map[string]any `json:"items"`
				NextCursor string           `json:"next_cursor"`
			}
			if _, err := c.call(ctx, "GET", path, nil, &page); err != nil {
				return err
			}
			all = append(all, page.Items...)
			if page.NextCursor == "" {
				break
			}
			path = "/" + kind + "?limit=200&cursor=" + url.QueryEscape(page.NextCursor)
			if *site != "" {
				path += "&site=" + url.QueryEscape(*site)
			}
		}
		for _, it := range all {
			fmt.Fprintln(stdout, summary(kind, it))
		}
		return nil
	case "get":
		if fs.NArg() != 1 {
			return usageError("want one id")
		}
		var v any
		if _, err := c.call(ctx, "GET", "/"+kind+"/"+url.PathEscape(fs.Arg(0)), nil, &v); err != nil {
			return err
		}
		return writeYAML(stdout, v)
	case "delete":
		if fs.NArg() != 1 {
			return usageError("want one id")
		}
		if _, err := c.call(ctx, "DELETE", "/"+kind+"/"+url.PathEscape(fs.Arg(0)), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted %s %s\n", strings.TrimSuffix(kind, "s"), fs.Arg(0))
		return nil
	case "apply":
		data, err := readInput(*file, stdin)
		if err != nil {
			return err
		}
		js, err := yaml.YAMLToJSON(data)
		if err != nil {
			return fmt.Errorf("%s: %w", *file, err)
		}
		var body map[string]any
		if err := json.Unmarshal(js, &body); err != nil {
			return fmt.Errorf("%s: want one resource object: %w", *file, err)
		}
		id, _ := body["id"].(string)
		if id == "" {
			return fmt.Errorf("%s: id is required", *file)
		}
		if kind == "keys" {
			var out struct {
				Token string `json:"token"`
			}
			if _, err := c.call(ctx, "POST", "/keys", body, &out); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "created key %s\ntoken (shown once): %s\n", id, out.Token)
			return nil
		}
		h, err := c.call(ctx, "GET", "/"+kind+"/"+url.PathEscape(id), nil, nil)
		var f *apiFailure
		switch {
		case errors.As(err, &f) && f.Status == http.StatusNotFound:
			if _, err := c.call(ctx, "POST", "/"+kind, body, nil); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "created %s %s\n", strings.TrimSuffix(kind, "s"), id)
		case err != nil:
			return err
		default:
			if _, err := c.call(ctx, "PUT", "/"+kind+"/"+url.PathEscape(id), body, nil, "If-Match", h.Get("ETag")); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "applied %s %s\n", strings.TrimSuffix(kind, "s"), id)
		}
		return nil
	}
	return usageError("unknown verb " + verb)
}

func summary(kind string, it map[string]any) string {
	s := func(k string) string { v, _ := it[k].(string); return v }
	switch kind {
	case "sites":
		return fmt.Sprintf("%-24s tenant=%s domains=%v", s("id"), s("tenant"), it["domains"])
	case "destinations":
		return fmt.Sprintf("%-24s site=%s type=%s", s("id"), s("site"), s("type"))
	case "routes":
		state := "enabled"
		if d, _ := it["disabled"].(bool); d {
			state = "disabled"
		}
		if tm, _ := it["test_mode"].(bool); tm {
			state += ",test"
		}
		return fmt.Sprintf("%-24s site=%s destination=%s %s", s("id"), s("site"), s("destination"), state)
	case "keys":
		return fmt.Sprintf("%-24s tenant=%s role=%s", s("id"), s("tenant"), s("role"))
	}
	return fmt.Sprintf("%-24s %s", s("id"), s("name"))
}

func readInput(file string, stdin io.Reader) ([]byte, error) {
	switch file {
	case "":
		return nil, usageError("-f FILE is required")
	case "-":
		return io.ReadAll(io.LimitReader(stdin, model.MaxConfigBytes+1))
	}
	return os.ReadFile(file)
}

func writeYAML(w io.Writer, v any) error {
	js, err := json.Marshal(v)
	if err != nil {
		return err
	}
	y, err := yaml.JSONToYAML(js)
	if err != nil {
		return err
	}
	_, err = w.Write(y)
	return err
}

// applyConfig sends a config file to POST /apply and prints the changes.
func (c *adminClient) applyConfig(ctx context.Context, args []string, stdin io.Reader, stdout io.Writer) error {
	fs := flag.NewFlagSet("apply", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	file := fs.String("f", "", "config file (YAML or JSON)")
	dry := fs.Bool("dry-run", false, "show the changes, write nothing")
	prune := fs.Bool("prune", false, "delete what you can see and the file does not hold")
	if err := fs.Parse(args); err != nil {
		return usageError(err.Error())
	}
	data, err := readInput(*file, stdin)
	if err != nil {
		return err
	}
	cfg, err := model.DecodeConfig(data)
	if err != nil {
		return err
	}
	q := url.Values{}
	if *dry {
		q.Set("dry_run", "true")
	}
	if *prune {
		q.Set("prune", "true")
	}
	var out struct {
		DryRun  bool  `json:"dry_run"`
		Version int64 `json:"version"`
		Changes []struct {
			Op     string   `json:"op"`
			Kind   string   `json:"kind"`
			ID     string   `json:"id"`
			Fields []string `json:"fields"`
		} `json:"changes"`
	}
	if _, err := c.call(ctx, "POST", "/apply?"+q.Encode(), cfg, &out); err != nil {
		return err
	}
	sort.SliceStable(out.Changes, func(i, j int) bool { return out.Changes[i].Op < out.Changes[j].Op })
	for _, ch := range out.Changes {
		mark := map[string]string{"create": "+", "update": "~", "delete": "-"}[ch.Op]
		line := fmt.Sprintf("%s %s %s", mark, ch.Kind, ch.ID)
		if ch.Op == "update" && len(ch.Fields) > 0 {
			line += " (" + strings.Join(ch.Fields, ", ") + ")"
		}
		fmt.Fprintln(stdout, line)
	}
	switch {
	case len(out.Changes) == 0:
		fmt.Fprintln(stdout, "no changes")
	case out.DryRun:
		fmt.Fprintf(stdout, "dry run: %d changes, nothing written\n", len(out.Changes))
	default:
		fmt.Fprintf(stdout, "applied %d changes (version %d)\n", len(out.Changes), out.Version)
	}
	return nil
}

// export writes the visible configuration as YAML, secrets redacted.
func (c *adminClient) export(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	file := fs.String("o", "", "write to this file instead of stdout")
	if err := fs.Parse(args); err != nil {
		return usageError(err.Error())
	}
	var cfg json.RawMessage
	if _, err := c.call(ctx, "GET", "/export", nil, &cfg); err != nil {
		return err
	}
	y, err := yaml.JSONToYAML(cfg)
	if err != nil {
		return err
	}
	header := []byte("# tagway export: secrets are redacted ({set: true}); apply keeps their current values.\n")
	if *file != "" {
		return os.WriteFile(*file, append(header, y...), 0o600)
	}
	_, err = stdout.Write(append(header, y...))
	return err
}

func (c *adminClient) sendTest(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("send-test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	site := fs.String("site", "", "site id")
	event := fs.String("event", "Purchase", "event name")
	code := fs.String("test-event-code", "", "send to every route's test channel with this code")
	if err := fs.Parse(args); err != nil {
		return usageError(err.Error())
	}
	if *site == "" {
		return usageError("--site is required")
	}
	var out struct {
		EventID string   `json:"event_id"`
		Routes  []string `json:"routes"`
	}
	body := map[string]string{"event_name": *event, "test_event_code": *code}
	if _, err := c.call(ctx, "POST", "/sites/"+url.PathEscape(*site)+"/test-event", body, &out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "queued %s %s for routes %v\n", *event, out.EventID, out.Routes)
	if len(out.Routes) == 0 {
		fmt.Fprintln(stdout, "no route will send it: put a route in test mode, or pass --test-event-code")
	}
	fmt.Fprintln(stdout, "see the outcome with: tagway test-results ROUTE")
	return nil
}

func (c *adminClient) simpleGet(ctx context.Context, args []string, use string, path func(string) string, stdout io.Writer) error {
	if len(args) != 1 {
		return usageError("usage: " + use)
	}
	var v any
	if _, err := c.call(ctx, "GET", path(args[0]), nil, &v); err != nil {
		return err
	}
	return writeYAML(stdout, v)
}

func (c *adminClient) audit(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	limit := fs.Int("limit", 50, "entries (at most 200)")
	if err := fs.Parse(args); err != nil {
		return usageError(err.Error())
	}
	var out struct {
		Items []struct {
			At         time.Time `json:"at"`
			Actor      string    `json:"actor"`
			Tenant     string    `json:"actor_tenant"`
			Op         string    `json:"op"`
			Kind       string    `json:"kind"`
			ResourceID string    `json:"resource_id"`
			Fields     []string  `json:"fields"`
		} `json:"items"`
	}
	if _, err := c.call(ctx, "GET", fmt.Sprintf("/audit?limit=%d", *limit), nil, &out); err != nil {
		return err
	}
	for _, e := range out.Items {
		// The actor with its tenant: a key id alone could look like another's.
		actor := e.Actor + "@" + cmp.Or(e.Tenant, "operator")
		fmt.Fprintf(stdout, "%s %-20s %-7s %s %s %s\n", e.At.Format(time.RFC3339), actor, e.Op, e.Kind, e.ResourceID, strings.Join(e.Fields, ","))
	}
	return nil
}

func (c *adminClient) rotate(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("rotate-ingest-key", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	overlap := fs.String("overlap", "24h", "how long the current key stays valid")
	// The site comes first or after the flags.
	var site string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		site, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return usageError(err.Error())
	}
	if site == "" && fs.NArg() == 1 {
		site = fs.Arg(0)
	}
	if site == "" {
		return usageError("usage: rotate-ingest-key SITE [--overlap 24h]")
	}
	var out struct {
		Key   string     `json:"ingest_key"`
		Until *time.Time `json:"previous_keys_valid_until"`
	}
	if _, err := c.call(ctx, "POST", "/sites/"+url.PathEscape(site)+"/ingest-keys", map[string]string{"overlap": *overlap}, &out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "new ingest key (shown once): %s\n", out.Key)
	if out.Until != nil {
		fmt.Fprintf(stdout, "the previous keys work until %s\n", out.Until.Format(time.RFC3339))
	}
	return nil
}
