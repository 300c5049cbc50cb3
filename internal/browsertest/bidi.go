package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"sync"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// bidi is a WebDriver BiDi client: commands and their results matched by
// id, events handed to onEvent (on the reader goroutine; it must not block).
type bidi struct {
	conn    net.Conn
	rw      io.ReadWriter
	onEvent func(method string, params json.RawMessage)

	wmu sync.Mutex // one writer at a time

	mu      sync.Mutex
	next    int
	pending map[int]chan bidiReply
	err     error // set when the connection ended
	done    chan struct{}
}

// bidiReply is a message from the remote end: a command's result or error,
// or an event.
type bidiReply struct {
	ID      *int            `json:"id"`
	Type    string          `json:"type"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   string          `json:"error"`
	Message string          `json:"message"`
}

// BiDiError is an error the remote end answered a command with.
type BiDiError struct {
	Method, Code, Message string
}

func (e *BiDiError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.Method, e.Code, e.Message)
}

func dialBiDi(ctx context.Context, url string, onEvent func(string, json.RawMessage)) (*bidi, error) {
	conn, br, _, err := ws.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	var r io.Reader = conn
	if br != nil { // frames sent right after the handshake: read them first
		r = io.MultiReader(br, conn)
	}
	c := &bidi{
		conn: conn,
		rw: struct {
			io.Reader
			io.Writer
		}{r, conn},
		onEvent: onEvent,
		pending: map[int]chan bidiReply{},
		done:    make(chan struct{}),
	}
	go c.read()
	return c, nil
}

func (c *bidi) read() {
	var err error
	for {
		var data []byte
		data, _, err = wsutil.ReadServerData(c.rw)
		if err != nil {
			break
		}
		var m bidiReply
		if json.Unmarshal(data, &m) != nil {
			continue
		}
		if m.Type == "event" {
			if c.onEvent != nil {
				c.onEvent(m.Method, m.Params)
			}
			continue
		}
		if m.ID == nil {
			continue
		}
		c.mu.Lock()
		ch := c.pending[*m.ID]
		delete(c.pending, *m.ID)
		c.mu.Unlock()
		if ch != nil {
			ch <- m
		}
	}
	c.mu.Lock()
	c.err = err
	c.mu.Unlock()
	close(c.done)
}

// call sends a command and decodes its result into out (nil: dropped).
func (c *bidi) call(ctx context.Context, method string, params, out any) error {
	if params == nil {
		params = struct{}{}
	}
	ch := make(chan bidiReply, 1)
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return fmt.Errorf("%s: connection closed: %w", method, c.err)
	}
	c.next++
	id := c.next
	c.pending[id] = ch
	c.mu.Unlock()
	msg, err := json.Marshal(map[string]any{"id": id, "method": method, "params": params})
	if err != nil {
		return err
	}
	c.wmu.Lock()
	err = wsutil.WriteClientText(c.conn, msg)
	c.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	select {
	case m := <-ch:
		if m.Type == "error" {
			return &BiDiError{Method: method, Code: m.Error, Message: m.Message}
		}
		if out == nil {
			return nil
		}
		return json.Unmarshal(m.Result, out)
	case <-c.done:
		return fmt.Errorf("%s: connection closed", method)
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

func (c *bidi) close() error { return c.conn.Close() }

// undefined reports whether a RemoteValue is undefined.
func undefined(raw json.RawMessage) bool {
	var v struct {
		Type string `json:"type"`
	}
	return json.Unmarshal(raw, &v) == nil && v.Type == "undefined"
}

// remoteValue turns a BiDi RemoteValue into the Go value encoding/json
// would decode from the value's JSON.stringify: nil, bool, float64,
// string, []any or map[string]any. Properties whose value is undefined are
// left out; other values JSON has no form for (NaN, functions, nodes)
// become nil.
func remoteValue(raw json.RawMessage) (any, error) {
	var v struct {
		Type  string          `json:"type"`
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	switch v.Type {
	case "string", "boolean":
		var x any
		err := json.Unmarshal(v.Value, &x)
		return x, err
	case "number":
		var f float64
		if json.Unmarshal(v.Value, &f) != nil {
			return nil, nil // NaN, Infinity, -0 as strings
		}
		return f, nil
	case "array", "set":
		var items []json.RawMessage
		if err := json.Unmarshal(v.Value, &items); err != nil {
			return nil, err
		}
		out := make([]any, 0, len(items))
		for _, it := range items {
			x, err := remoteValue(it)
			if err != nil {
				return nil, err
			}
			out = append(out, x)
		}
		return out, nil
	case "object", "map":
		var pairs [][2]json.RawMessage
		if err := json.Unmarshal(v.Value, &pairs); err != nil {
			return nil, err
		}
		out := make(map[string]any, len(pairs))
		for _, p := range pairs {
			var key string
			if json.Unmarshal(p[0], &key) != nil {
				k, err := remoteValue(p[0])
				if err != nil {
					return nil, err
				}
				key = fmt.Sprint(k)
			}
			if undefined(p[1]) { // as JSON leaves it out
				continue
			}
			x, err := remoteValue(p[1])
			if err != nil {
				return nil, err
			}
			out[key] = x
		}
		return out, nil
	default:
		return nil, nil
	}
}
