package gateway

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/tagway/tagway/destinations"
)

// shopData is testdata/shopdata.json: shop data shapes with what must
// come out of the browser path, shared with the browser tests.
type shopData struct {
	Rows []shopRow `json:"rows"`
}

type shopRow struct {
	Name   string          `json:"name"`
	Wire   json.RawMessage `json:"wire"`
	Expect struct {
		Status    string `json:"status"`
		Fixes     []fix  `json:"fixes"`
		EventName string `json:"event_name"`
		Error     *struct {
			Field  string `json:"field"`
			Reason string `json:"reason"`
		} `json:"error"`
		CustomData     json.RawMessage   `json:"custom_data"`
		UserDataHashed map[string]string `json:"user_data_hashed"`
		UserDataAbsent []string          `json:"user_data_absent"`
		Meta           string            `json:"meta"`
		Incomplete     string            `json:"incomplete"`
	} `json:"expect"`
}

func readShopData(t testing.TB) []shopRow {
	t.Helper()
	b, err := os.ReadFile("testdata/shopdata.json")
	if err != nil {
		t.Fatal(err)
	}
	var d shopData
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil || len(d.Rows) == 0 {
		t.Fatalf("testdata/shopdata.json: %v", err)
	}
	return d.Rows
}

// TestShopData drives every row of testdata/shopdata.json through
// /collect, beside a clean PageView, and checks the event's outcome and
// the canonical event that reaches the queue: its custom_data whole, its
// hashed customer information, and whether routing will keep it from Meta.
func TestShopData(t *testing.T) {
	for _, row := range readShopData(t) {
		t.Run(row.Name, func(t *testing.T) {
			tg := newTestGateway(t, nil)
			body := `{"debug":true,"events":[` + string(row.Wire) + `,{"event_name":"PageView","event_id":"neighbour"}]}`
			a := decodeAnswer(t, tg.do("POST", "/collect", body, "Origin", "https://shop.example"))
			if len(a.Events) != 2 || a.Events[1].Status != statusAccepted {
				t.Fatalf("answer %+v", a)
			}
			got, x := a.Events[0], row.Expect
			if got.Status != x.Status {
				t.Fatalf("status %q (%+v); want %q", got.Status, got, x.Status)
			}
			for _, f := range x.Fixes {
				if !hasFix(got.Fixes, f) {
					t.Errorf("fixes %+v lack %+v", got.Fixes, f)
				}
			}
			stored := tg.q.all()
			if x.Status == statusRejected {
				if got.Error == nil || got.Error.Field != x.Error.Field || got.Error.Reason != x.Error.Reason {
					t.Errorf("refusal %+v; want %+v", got.Error, x.Error)
				}
				if len(stored) != 1 {
					t.Errorf("%d events stored; want the neighbour only", len(stored))
				}
				return
			}
			if len(stored) != 2 {
				t.Fatalf("%d events stored", len(stored))
			}
			ev := stored[0]
			if x.EventName != "" && ev.EventName != x.EventName {
				t.Errorf("event_name %q; want %q", ev.EventName, x.EventName)
			}
			if x.CustomData != nil {
				var gotCD, wantCD any
				b, _ := json.Marshal(ev.CustomData)
				if ev.CustomData == nil {
					b = []byte(`{}`)
				}
				_ = json.Unmarshal(b, &gotCD)
				_ = json.Unmarshal(x.CustomData, &wantCD)
				if !reflect.DeepEqual(gotCD, wantCD) {
					t.Errorf("custom_data %s; want %s", b, x.CustomData)
				}
			}
			for k, v := range x.UserDataHashed {
				if h := userDataValues(ev.UserData, k); len(h) != 1 || h[0] != sum(v) {
					t.Errorf("user_data.%s = %v; want the SHA-256 of %q", k, h, v)
				}
			}
			for _, k := range x.UserDataAbsent {
				if h := userDataValues(ev.UserData, k); len(h) != 0 {
					t.Errorf("user_data.%s = %v; want none", k, h)
				}
			}
			if ev.Context.Incomplete != x.Incomplete || (x.Meta == "withheld") != (x.Incomplete != "") {
				t.Errorf("incomplete %q; want %q (meta %s)", ev.Context.Incomplete, x.Incomplete, x.Meta)
			}
		})
	}
}

// userDataValues returns the hashed values of user_data key k.
func userDataValues(u destinations.UserData, k string) []string {
	b, _ := json.Marshal(u)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	var out []string
	if l, ok := m[k].([]any); ok {
		for _, v := range l {
			out = append(out, v.(string))
		}
	}
	return out
}
