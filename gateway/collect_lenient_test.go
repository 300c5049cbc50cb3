package gateway

import (
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// counter returns the value of a counter of reg with these labels (0 when
// it has none yet).
func counter(t testing.TB, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, l := range m.GetLabel() {
				have[l.GetName()] = l.GetValue()
			}
			for k, v := range labels {
				if have[k] != v {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// A clean request is a 204; with debug it is a 200 listing each event as
// accepted, and stores the same.
func TestCollectDebug(t *testing.T) {
	tg := newTestGateway(t, nil)
	body := `{"debug":true,"sent_at":` + strconv.FormatInt(testNow.UnixMilli(), 10) + `,"events":[{"event_name":"PageView","event_id":"p1"},{"event_name":"ViewContent","event_id":"v1"}]}`
	a := decodeAnswer(t, tg.do("POST", "/collect", body, "Origin", "https://shop.example"))
	if a.Accepted != 2 || a.Rejected != 0 || !reflect.DeepEqual(a.Events, []eventOutcome{{EventID: "p1", Status: statusAccepted}, {EventID: "v1", Status: statusAccepted}}) {
		t.Errorf("answer %+v", a)
	}
	if w := tg.do("POST", "/collect", strings.Replace(body, `"debug":true`, `"debug":false`, 1), "Origin", "https://shop.example"); w.Code != http.StatusNoContent {
		t.Errorf("without debug: %d %s", w.Code, w.Body)
	}
	if n := len(tg.q.all()); n != 4 {
		t.Errorf("%d events stored; want 4", n)
	}
}

// Clock skew: with sent_at, each event_time of the batch moves by the
// device clock's error (order kept); without it, a time ahead is clamped
// to now and a time too old refuses that event only.
func TestCollectClockSkew(t *testing.T) {
	now := testNow
	type want struct {
		times  []int64 // of the stored events, in order
		status []string
		fix    fix
	}
	twoHours := int64(2 * 3600)
	eightDays := int64(8 * 86400)
	events := func(times ...int64) string {
		var parts []string
		for i, ts := range times {
			parts = append(parts, fmt.Sprintf(`{"event_name":"E%d","event_time":%d}`, i, ts))
		}
		return `"events":[` + strings.Join(parts, ",") + `]`
	}
	for _, tc := range []struct {
		name string
		body string
		want want
	}{
		{"clock 2 hours fast",
			`{"sent_at":` + strconv.FormatInt(now.UnixMilli()+twoHours*1000, 10) + `,` + events(now.Unix()+twoHours-30, now.Unix()+twoHours-1) + `}`,
			want{[]int64{now.Unix() - 30, now.Unix() - 1}, []string{"fixed", "fixed"}, fix{"event_time", reasonClockSkew}}},
		{"clock 8 days slow",
			`{"sent_at":` + strconv.FormatInt(now.UnixMilli()-eightDays*1000, 10) + `,` + events(now.Unix()-eightDays-600, now.Unix()-eightDays-5) + `}`,
			want{[]int64{now.Unix() - 600, now.Unix() - 5}, []string{"fixed", "fixed"}, fix{"event_time", reasonClockSkew}}},
		{"stored event from an earlier page, clock right",
			`{"sent_at":` + strconv.FormatInt(now.UnixMilli(), 10) + `,` + events(now.Unix()-3600, now.Unix()-eightDays) + `}`,
			want{[]int64{now.Unix() - 3600}, []string{"accepted", "rejected"}, fix{}}},
		{"network time only: no fix",
			`{"sent_at":` + strconv.FormatInt(now.UnixMilli()-700, 10) + `,` + events(now.Unix()-10) + `}`,
			want{[]int64{now.Unix() - 9}, []string{"accepted"}, fix{}}},
		{"no sent_at, 2 hours fast",
			`{` + events(now.Unix()+twoHours, now.Unix()-5) + `}`,
			want{[]int64{now.Unix(), now.Unix() - 5}, []string{"fixed", "accepted"}, fix{"event_time", reasonClockAhead}}},
		{"no sent_at, 8 days slow",
			`{` + events(now.Unix()-eightDays, now.Unix()-5) + `}`,
			want{[]int64{now.Unix() - 5}, []string{"rejected", "accepted"}, fix{}}},
		{"sent_at a string",
			`{"sent_at":"soon",` + events(now.Unix()-5) + `}`,
			want{[]int64{now.Unix() - 5}, []string{"fixed"}, fix{"sent_at", reasonInvalid}}},
		{"sent_at in seconds",
			`{"sent_at":` + strconv.FormatInt(now.Unix(), 10) + `,` + events(now.Unix()-5) + `}`,
			want{[]int64{now.Unix() - 5}, []string{"fixed"}, fix{"sent_at", reasonInvalid}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := newTestGateway(t, nil)
			w := tg.do("POST", "/collect", `{"debug":true,`+tc.body[1:], "Origin", "https://shop.example")
			a := decodeAnswer(t, w)
			var statuses []string
			for _, o := range a.Events {
				statuses = append(statuses, o.Status)
				if o.Status == statusRejected && (o.Error.Reason != refusedTooOld || o.Error.Field != "event_time") {
					t.Errorf("refusal %+v; want too_old", o.Error)
				}
			}
			if fmt.Sprint(statuses) != fmt.Sprint(tc.want.status) {
				t.Errorf("statuses %v; want %v", statuses, tc.want.status)
			}
			if tc.want.fix != (fix{}) && !hasFix(a.Events[0].Fixes, tc.want.fix) {
				t.Errorf("fixes %+v; want %+v", a.Events[0].Fixes, tc.want.fix)
			}
			var times []int64
			for _, ev := range tg.q.all() {
				times = append(times, ev.EventTime)
			}
			if fmt.Sprint(times) != fmt.Sprint(tc.want.times) {
				t.Errorf("stored times %v; want %v", times, tc.want.times)
			}
		})
	}
}

func hasFix(fixes []fix, f fix) bool {
	for _, g := range fixes {
		if g == f {
			return true
		}
	}
	return false
}

// A page URL over 2,048 bytes: its click ids are read from all of it, the
// events get it truncated, and the PageView is stored.
func TestCollectLongPageURL(t *testing.T) {
	tg := newTestGateway(t, nil)
	long := "https://shop.example/c?filter=" + strings.Repeat("size-m%2C", 300) + "&gclid=Cj0KCQ-long&fbclid=IwAR-long"
	w := tg.do("POST", "/collect", `{"url":"`+long+`","referrer":"https://www.google.com/?q=`+strings.Repeat("x", 2100)+`","events":[{"event_name":"PageView"}]}`,
		"Origin", "https://shop.example")
	a := decodeAnswer(t, w)
	if a.Accepted != 1 || !hasFix(a.Events[0].Fixes, fix{"url", reasonTruncated}) || !hasFix(a.Events[0].Fixes, fix{"referrer", reasonTruncated}) {
		t.Fatalf("answer %+v", a)
	}
	ev := tg.q.all()[0]
	if len(ev.EventSourceURL) > maxURLLen || !strings.HasPrefix(long, ev.EventSourceURL) || len(ev.ReferrerURL) > maxURLLen {
		t.Errorf("event_source_url %d bytes, referrer_url %d bytes", len(ev.EventSourceURL), len(ev.ReferrerURL))
	}
	if ev.Context.ClickIDs["gclid"].Value != "Cj0KCQ-long" || !strings.HasSuffix(ev.UserData.Fbc, ".IwAR-long") {
		t.Errorf("click ids %+v, fbc %q: not read from the whole URL", ev.Context.ClickIDs, ev.UserData.Fbc)
	}
}

// A page whose Array.prototype.toJSON stringifies arrays (Prototype.js,
// Magento 1) sends "events" and every list inside as JSON strings.
func TestCollectStringifiedArrays(t *testing.T) {
	tg := newTestGateway(t, nil)
	inner := `[{"event_name": "AddToCart", "custom_data": {"content_ids": "[\"sku-1\", \"sku-2\"]", "value": 5, "currency": "EUR"}}, {"event_name": "PageView"}]`
	w := tg.do("POST", "/collect", `{"events":`+strconv.Quote(inner)+`}`, "Origin", "https://shop.example")
	a := decodeAnswer(t, w)
	if a.Accepted != 2 || !hasFix(a.Events[0].Fixes, fix{"events", reasonStringifiedArray}) ||
		!hasFix(a.Events[0].Fixes, fix{"custom_data.content_ids", reasonStringifiedArray}) {
		t.Fatalf("answer %+v", a)
	}
	evs := tg.q.all()
	if len(evs) != 2 || fmt.Sprint(evs[0].CustomData.ContentIDs) != "[sku-1 sku-2]" || evs[1].EventName != "PageView" {
		t.Errorf("stored %+v", evs)
	}
}

// Fixes and refusals are counted, with bounded labels.
func TestCollectFixMetrics(t *testing.T) {
	tg := newTestGateway(t, nil)
	body := `{"madeup":1,"events":[
		{"event_name":"AddToCart","custom_data":{"value":"19,90","currency":"€","contents":[{"id":7},{"id":8}]},"whatever":1},
		{"event_name":""},
		{"event_name":"PageView","user_data":{"em":"x","nickname":"y"}}]}`
	a := decodeAnswer(t, tg.do("POST", "/collect", body, "Origin", "https://shop.example"))
	if a.Accepted != 2 || a.Rejected != 1 {
		t.Fatalf("answer %+v", a)
	}
	for _, c := range []struct {
		field, reason string
		want          float64
	}{
		{"custom_data.value", reasonDecimalComma, 1},
		{"custom_data.currency", reasonCurrencySymbol, 1},
		{"custom_data.contents.id", reasonNumberToString, 2},
		{"other", reasonUnknownField, 3}, // "whatever" once, "madeup" once per stored event
		{"user_data.em", reasonUnusable, 1},
		{"user_data.other", reasonUnknownField, 1},
	} {
		if got := counter(t, tg.reg, "tagway_events_fixed_total", map[string]string{"field": c.field, "reason": c.reason}); got != c.want {
			t.Errorf("tagway_events_fixed_total{field=%q,reason=%q} = %v; want %v", c.field, c.reason, got, c.want)
		}
	}
	if got := counter(t, tg.reg, "tagway_events_rejected_total", map[string]string{"reason": refusedMissing}); got != 1 {
		t.Errorf("tagway_events_rejected_total{reason=missing} = %v; want 1", got)
	}
	if got := counter(t, tg.reg, "tagway_events_received_total", map[string]string{"site": "shop", "source": "browser"}); got != 2 {
		t.Errorf("received = %v; want 2", got)
	}
}

// Every event refused: a 200 that says so, nothing stored, no cookie set.
func TestCollectAllRefused(t *testing.T) {
	tg := newTestGateway(t, nil)
	w := tg.do("POST", "/collect", `{"events":[{"event_name":""},7]}`, "Origin", "https://shop.example")
	a := decodeAnswer(t, w)
	if a.Accepted != 0 || a.Rejected != 2 || a.Events[1].Error.Reason != refusedNotObject {
		t.Errorf("answer %+v", a)
	}
	if len(tg.q.calls) != 0 {
		t.Errorf("enqueued %+v", tg.q.calls)
	}
	if c := w.Result().Cookies(); len(c) != 0 {
		t.Errorf("cookies %v set for no event", c)
	}
}

// More than MaxEvents is refused before the rest of the array is read:
// what follows the 51st event is never looked at.
func TestCollectCountsEventsFirst(t *testing.T) {
	tg := newTestGateway(t, nil)
	fiftyOne := strings.Repeat(`{"event_name":"A"},`, 51)
	for _, body := range []string{
		`{"events":[` + fiftyOne + `{"event_name":`,                   // cut short after the 51st
		`{"events":[` + fiftyOne + `{"event_name":"A","value":"x"}]}`, // the fast path would fail on the 52nd
		`{"consent":5,"events":[` + fiftyOne + `{"event_name":"A"}]}`, // the slow path from the start
		`{"events":[` + fiftyOne + `{"event_name":"A"}],"x":`,         // broken after the array
	} {
		w := tg.do("POST", "/collect", body, "Origin", "https://shop.example")
		if e := decodeError(t, w); w.Code != http.StatusRequestEntityTooLarge || e.Error.Code != codeTooManyEvents {
			t.Errorf("%d %+v; want 413 too_many_events", w.Code, e.Error)
		}
	}
}

// A click id no cookie can hold (a quote: net/http would log a line that
// is not JSON and drop bytes) is kept out of the cookies and the event,
// and counted.
func TestCollectClickIDNotCookieSafe(t *testing.T) {
	tg := newTestGateway(t, nil)
	w := tg.do("POST", "/collect", `{"url":"https://shop.example/?gclid=abc%22def&ttclid=ok-1","events":[{"event_name":"PageView"}]}`,
		"Origin", "https://shop.example")
	a := decodeAnswer(t, w)
	if !hasFix(a.Events[0].Fixes, fix{"click_ids.gclid", reasonNotCookieSafe}) {
		t.Errorf("fixes %+v", a.Events[0].Fixes)
	}
	for _, line := range w.Header().Values("Set-Cookie") {
		if strings.Contains(line, "abc") || strings.HasPrefix(line, "_gcl_aw=") {
			t.Errorf("cookie %q holds the unsafe gclid", line)
		}
	}
	ev := tg.q.all()[0]
	if _, ok := ev.Context.ClickIDs["gclid"]; ok || ev.Context.ClickIDs["ttclid"].Value != "ok-1" {
		t.Errorf("click ids %+v", ev.Context.ClickIDs)
	}
	if got := counter(t, tg.reg, "tagway_events_fixed_total", map[string]string{"field": "click_ids.gclid", "reason": reasonNotCookieSafe}); got != 1 {
		t.Errorf("counted %v; want 1", got)
	}
}
