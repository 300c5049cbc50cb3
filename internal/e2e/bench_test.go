package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/tagway/tagway/internal/loadgen"
)

// The answer reference of tagway bench answers with the headers the
// gateway gives a new visitor of the benchmark, so that it prices the same
// answer.
func TestBenchAnswerReferenceMatchesGateway(t *testing.T) {
	// The quick start with its dry-run Meta destination, as `tagway bench
	// -spawn` runs it.
	gw := startGateway(t, gatewayOptions{})
	body := loadgen.Body{}.Append(nil, 1, 1)
	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/collect", bytes.NewReader(body))
	req.Header.Set("Origin", "http://127.0.0.1")
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) tagway-bench/1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	gotBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	ref := httptest.NewRecorder()
	r := httptest.NewRequest(http.MethodPost, "/collect", bytes.NewReader(body))
	r.Header.Set("Origin", "http://127.0.0.1")
	loadgen.AnswerHandler().ServeHTTP(ref, r)
	// The status, body, header names and values, with each cookie's value
	// masked (the visitor's ids differ) but its name and attributes kept.
	shape := func(h http.Header, status int, body string) string {
		var lines []string
		for k, vs := range h {
			if k == "Date" || k == "Content-Length" {
				continue
			}
			for _, v := range vs {
				if k == "Set-Cookie" {
					name, rest, _ := strings.Cut(v, "=")
					_, attrs, _ := strings.Cut(rest, ";")
					v = name + "=*;" + attrs
				}
				lines = append(lines, k+": "+v)
			}
		}
		slices.Sort(lines)
		return fmt.Sprintf("%d %s\n%s", status, body, strings.Join(lines, "\n"))
	}
	if g, w := shape(resp.Header, resp.StatusCode, string(gotBody)), shape(ref.Result().Header, ref.Code, ref.Body.String()); g != w {
		t.Errorf("gateway answers\n%s\nthe reference answers\n%s", g, w)
	}
}
