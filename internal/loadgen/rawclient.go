package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// sender sends one POST with a body and returns the answer's status after
// reading the whole answer. A sender keeping cookies sends back those its
// answers set until forgetCookies.
type sender interface {
	send(ctx context.Context, body []byte) (int, error)
	forgetCookies()
	close()
}

// cookieJar is a sender's cookies: name=value pairs, by name, as the
// answers set them (attributes ignored: one target, one path).
type cookieJar struct {
	keep  bool
	pairs [][]byte
}

// set stores a Set-Cookie value's name=value.
func (j *cookieJar) set(v []byte) {
	pair, _, _ := bytes.Cut(v, []byte{';'})
	pair = bytes.TrimSpace(pair)
	name, _, ok := bytes.Cut(pair, []byte{'='})
	if !j.keep || !ok || len(name) == 0 {
		return
	}
	for i, p := range j.pairs {
		if n, _, _ := bytes.Cut(p, []byte{'='}); bytes.Equal(n, name) {
			j.pairs[i] = append(p[:0], pair...)
			return
		}
	}
	j.pairs = append(j.pairs, append([]byte(nil), pair...))
}

// appendHeader appends the Cookie header value ("a=1; b=2").
func (j *cookieJar) appendHeader(dst []byte) []byte {
	for i, p := range j.pairs {
		if i > 0 {
			dst = append(dst, "; "...)
		}
		dst = append(dst, p...)
	}
	return dst
}

func (j *cookieJar) forgetCookies() { j.pairs = j.pairs[:0] }

// The request headers every sender sends, besides Host and Content-Length.
const (
	contentType = "text/plain;charset=UTF-8"
	userAgent   = "Mozilla/5.0 (X11; Linux x86_64) tagway-bench/1"
)

// netHTTPSender sends through a net/http client (Options.Client).
type netHTTPSender struct {
	client      *http.Client
	url, origin string
	cookieJar
}

func (s *netHTTPSender) send(ctx context.Context, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Origin", s.origin)
	req.Header.Set("User-Agent", userAgent)
	if len(s.pairs) > 0 {
		req.Header.Set("Cookie", string(s.appendHeader(nil)))
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0, err
	}
	if s.keep {
		for _, c := range resp.Header.Values("Set-Cookie") {
			s.set([]byte(c))
		}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

func (s *netHTTPSender) close() {}

// rawSender is a minimal HTTP/1.1 client on one keep-alive connection:
// it writes the request in one write and parses the answer's status line,
// headers and body (Content-Length or chunked) itself, on the calling
// goroutine. net/http's client hands every request to two goroutines of
// its own; on two shared cores those hand-offs cost the load generator
// about as much CPU as the bare handler it measures, and the same again
// for the gateway's run.
type rawSender struct {
	addr, head string // head: request line and fixed headers
	conn       net.Conn
	br         *bufio.Reader
	req        []byte
	deadline   time.Time
	cookieJar
}

func newRawSender(rawURL, origin string) (*rawSender, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	path := u.RequestURI()
	host := u.Host
	addr := host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	head := "POST " + path + " HTTP/1.1\r\nHost: " + host + "\r\nContent-Type: " + contentType +
		"\r\nOrigin: " + origin + "\r\nUser-Agent: " + userAgent + "\r\nContent-Length: "
	return &rawSender{addr: addr, head: head}, nil
}

// rawTimeout bounds one request, as the net/http client's Timeout does.
const rawTimeout = 30 * time.Second

func (s *rawSender) send(ctx context.Context, body []byte) (int, error) {
	if s.conn == nil {
		d := net.Dialer{Timeout: 5 * time.Second}
		c, err := d.DialContext(ctx, "tcp", s.addr)
		if err != nil {
			return 0, err
		}
		s.conn = c
		if s.br == nil {
			s.br = bufio.NewReaderSize(c, 16<<10)
		} else {
			s.br.Reset(c)
		}
		s.deadline = time.Time{}
	}
	// Refresh the connection's deadline at most once a second: a request
	// never runs past rawTimeout+1s.
	if now := time.Now(); now.Add(rawTimeout).Sub(s.deadline) > time.Second {
		s.deadline = now.Add(rawTimeout + time.Second)
		_ = s.conn.SetDeadline(s.deadline)
	}
	s.req = append(s.req[:0], s.head...)
	s.req = strconv.AppendInt(s.req, int64(len(body)), 10)
	if len(s.pairs) > 0 {
		s.req = append(s.req, "\r\nCookie: "...)
		s.req = s.appendHeader(s.req)
	}
	s.req = append(s.req, "\r\n\r\n"...)
	s.req = append(s.req, body...)
	if _, err := s.conn.Write(s.req); err != nil {
		s.close()
		return 0, err
	}
	status, keep, err := s.readResponse()
	if err != nil || !keep {
		s.close()
	}
	return status, err
}

// readResponse reads one answer: status line, headers, body.
func (s *rawSender) readResponse() (status int, keepAlive bool, err error) {
	line, err := s.line()
	if err != nil {
		return 0, false, err
	}
	// "HTTP/1.1 204 No Content"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, fmt.Errorf("loadgen: malformed status line %q", line)
	}
	if status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return 0, false, fmt.Errorf("loadgen: malformed status line %q", line)
	}
	length, chunked, keepAlive := -1, false, line[7] == '1'
	for {
		h, err := s.line()
		if err != nil {
			return status, false, err
		}
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte{':'})
		if !ok {
			return status, false, fmt.Errorf("loadgen: malformed header %q", h)
		}
		value = bytes.TrimSpace(value)
		switch {
		case asciiEqualFold(name, "Content-Length"):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return status, false, fmt.Errorf("loadgen: bad Content-Length %q", value)
			}
		case asciiEqualFold(name, "Transfer-Encoding"):
			chunked = asciiEqualFold(value, "chunked")
		case asciiEqualFold(name, "Connection"):
			keepAlive = !asciiEqualFold(value, "close")
		case s.keep && asciiEqualFold(name, "Set-Cookie"):
			s.set(value)
		}
	}
	switch {
	case status == http.StatusNoContent || status == http.StatusNotModified || (status >= 100 && status < 200):
	case chunked:
		if err := s.chunks(); err != nil {
			return status, false, err
		}
	case length >= 0:
		if _, err := s.br.Discard(length); err != nil {
			return status, false, err
		}
	default: // the body ends with the connection
		_, err := io.Copy(io.Discard, s.br)
		return status, false, err
	}
	return status, keepAlive, nil
}

// chunks discards a chunked body and its trailer.
func (s *rawSender) chunks() error {
	for {
		line, err := s.line()
		if err != nil {
			return err
		}
		size, _, _ := bytes.Cut(line, []byte{';'})
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("loadgen: bad chunk size %q", line)
		}
		if n == 0 {
			for { // trailer
				t, err := s.line()
				if err != nil || len(t) == 0 {
					return err
				}
			}
		}
		if _, err := s.br.Discard(int(n)); err != nil {
			return err
		}
		if crlf, err := s.line(); err != nil || len(crlf) != 0 {
			return errors.Join(err, errors.New("loadgen: malformed chunk"))
		}
	}
}

// line reads one CRLF-terminated line without its terminator (valid until
// the next read).
func (s *rawSender) line() ([]byte, error) {
	l, err := s.br.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, errors.New("loadgen: answer line too long")
		}
		return nil, err
	}
	return bytes.TrimRight(l, "\r\n"), nil
}

func (s *rawSender) close() {
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn = nil
	}
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
