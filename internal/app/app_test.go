package app

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/tagway/tagway/internal/testlog"
)

// The HTTP server's own complaints are JSON lines of the gateway's log.
func TestHTTPServerErrorLogIsJSON(t *testing.T) {
	logs := &testlog.Buffer{}
	srv := newHTTPServer(http.NotFoundHandler(), slog.New(slog.NewJSONHandler(logs, nil)))
	srv.ErrorLog.Printf("http: TLS handshake error from %s: %v", "192.0.2.1:1234", "EOF")
	var line struct {
		Level, Msg string
	}
	if err := json.Unmarshal([]byte(logs.String()), &line); err != nil || line.Level != "WARN" || !strings.Contains(line.Msg, "TLS handshake error") {
		t.Errorf("ErrorLog wrote %q; want a JSON warning", logs)
	}
}
