package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tagway/tagway/routing/config"
	"github.com/tagway/tagway/routing/dispatch"
	"github.com/tagway/tagway/routing/model"
)

const deadlettersUsage = `Usage: tagway deadletters list|replay|drop [flags]

Reads and changes the dead letters in Redis directly (REDIS_URL, with
TAGWAY_REDIS_MODE and TAGWAY_REDIS_MASTER as for serve), so it works while
the gateway is down; it is the operator's tool (tenants use the admin API's
/sites/{id}/deadletters). Dead letters
are the events a destination gave up on (reason permanent, too_old,
max_attempts or unknown_destination). replay moves the selected ones back into
their destination's retry schedule, due now with the attempt count reset; drop
deletes them for good. replay and drop touch exactly what list shows with the
same flags.

  tagway deadletters list --destination meta --reason max_attempts
  tagway deadletters replay --site default --since 2h
  tagway deadletters drop --id 1732752000000-0 --destination meta

--since and --until take an RFC 3339 time or a duration before now (90m, 2h).
Without --site/--destination every destination of the stored configuration
is searched.

Flags:
`

// dlFilter selects dead letters. Empty fields match everything.
type dlFilter struct {
	Site, Destination, Reason string
	Since, Until              time.Time
	IDs                       []string
	Limit                     int
}

// idList is a repeatable, comma-separated flag.
type idList []string

func (l *idList) String() string { return strings.Join(*l, ",") }

func (l *idList) Set(v string) error {
	for _, id := range strings.Split(v, ",") {
		if id = strings.TrimSpace(id); id != "" {
			*l = append(*l, id)
		}
	}
	return nil
}

// parseWhen reads an RFC 3339 time or a duration before now.
func parseWhen(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time nor a duration such as 2h", v)
	}
	return t, nil
}

func parseDeadlettersFlags(args []string, now time.Time, stderr io.Writer) (string, dlFilter, bool, error) {
	var f dlFilter
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fmt.Fprint(stderr, deadlettersUsage)
			return "", f, false, flag.ErrHelp
		}
		return "", f, false, errors.New("a subcommand is required: list, replay or drop")
	}
	action := args[0]
	switch action {
	case "list", "replay", "drop":
	default:
		return "", f, false, fmt.Errorf("unknown subcommand %q: want list, replay or drop", action)
	}
	fs := flag.NewFlagSet("deadletters "+action, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, deadlettersUsage); fs.PrintDefaults() }
	fs.StringVar(&f.Site, "site", "", "site id")
	fs.StringVar(&f.Destination, "destination", "", "destination id")
	fs.StringVar(&f.Reason, "reason", "", "reason: permanent, too_old, max_attempts or unknown_destination")
	since := fs.String("since", "", "only letters that failed at or after this time (RFC 3339 or a duration ago)")
	until := fs.String("until", "", "only letters that failed before this time (RFC 3339 or a duration ago)")
	fs.Var((*idList)(&f.IDs), "id", "dead-letter id (repeatable or comma-separated)")
	fs.IntVar(&f.Limit, "limit", 0, "at most this many letters (0: list shows 100, replay and drop take all)")
	jsonOut := fs.Bool("json", false, "print JSON lines instead of a table")
	if err := fs.Parse(args[1:]); err != nil {
		return "", f, false, err
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	var err error
	if f.Since, err = parseWhen(*since, now); err != nil {
		errs = append(errs, fmt.Errorf("--since: %w", err))
	}
	if f.Until, err = parseWhen(*until, now); err != nil {
		errs = append(errs, fmt.Errorf("--until: %w", err))
	}
	switch f.Reason {
	case "", dispatch.ReasonPermanent, dispatch.ReasonTooOld, dispatch.ReasonMaxAttempts, dispatch.ReasonUnknownDestination:
	default:
		errs = append(errs, fmt.Errorf("--reason: %q is not permanent, too_old, max_attempts or unknown_destination", f.Reason))
	}
	if f.Limit < 0 {
		errs = append(errs, errors.New("--limit must not be negative"))
	}
	if f.Site != "" && !model.ValidID(f.Site) {
		errs = append(errs, fmt.Errorf("--site: %q is not a valid id", f.Site))
	}
	if f.Destination != "" && !model.ValidID(f.Destination) {
		errs = append(errs, fmt.Errorf("--destination: %q is not a valid id", f.Destination))
	}
	if len(f.IDs) > 0 && f.Destination == "" {
		errs = append(errs, errors.New("--id needs --destination: ids are per dead-letter stream"))
	}
	if action == "list" && f.Limit == 0 {
		f.Limit = 100
	}
	return action, f, *jsonOut, errors.Join(errs...)
}

// Deadletters is `tagway deadletters list|replay|drop`: it works on the dead
// letters in Redis directly, connected by connect with getenv as `tagway
// serve` connects, and returns the exit code.
func Deadletters(ctx context.Context, args []string, getenv func(string) string, connect func(getenv func(string) string) (redis.UniversalClient, error),
	stdout, stderr io.Writer) int {
	now := time.Now()
	action, f, jsonOut, err := parseDeadlettersFlags(args, now, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "tagway deadletters: %v\n", err)
		return 2
	}
	rdb, err := connect(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "tagway deadletters: %v\n", err)
		return 2
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	dl := &deadLetterAdmin{rdb: rdb, dead: dispatch.NewDeadLetterStore(rdb, nil)}
	res, err := dl.run(ctx, action, f)
	if err != nil {
		fmt.Fprintf(stderr, "tagway deadletters: %v\n", err)
		return 1
	}
	printDeadLetters(stdout, action, res, jsonOut)
	return 0
}

// dlResult is what one command selected and, for replay and drop, did.
type dlResult struct {
	letters []dispatch.DeadLetter
	done    int
}

// deadLetterAdmin runs the dead-letter commands on Redis through the
// engine's dead-letter API (dispatch.DeadLetterStore).
type deadLetterAdmin struct {
	rdb  redis.UniversalClient
	dead *dispatch.DeadLetterStore
}

// sites lists the sites the filter covers: the given one, the site of the
// given destination, else every site of the stored configuration.
func (a *deadLetterAdmin) sites(ctx context.Context, f dlFilter) ([]string, error) {
	if f.Site != "" {
		return []string{f.Site}, nil
	}
	store := config.NewStore(a.rdb, nil)
	if err := store.Load(ctx); err != nil {
		return nil, err
	}
	snap := store.Snapshot()
	if f.Destination != "" {
		if d, ok := snap.Destination(f.Destination); ok {
			return []string{d.SiteID}, nil
		}
		return nil, fmt.Errorf("destination %q is not in the stored configuration; name its --site", f.Destination)
	}
	var out []string
	for _, s := range snap.Config().Sites {
		out = append(out, s.ID)
	}
	if len(out) == 0 {
		return nil, errors.New("the stored configuration has no site; name one with --site")
	}
	return out, nil
}

// run selects the letters and, for replay and drop, acts on exactly those.
func (a *deadLetterAdmin) run(ctx context.Context, action string, f dlFilter) (dlResult, error) {
	sites, err := a.sites(ctx, f)
	if err != nil {
		return dlResult{}, err
	}
	var res dlResult
	for _, site := range sites {
		rf := dispatch.DeadLetterFilter{Site: site, Destination: f.Destination, Reason: f.Reason,
			Since: f.Since, Until: f.Until, IDs: f.IDs}
		all, err := a.dead.ListDeadLetters(ctx, rf)
		if err != nil {
			return res, err
		}
		if f.Limit > 0 {
			all = all[:min(len(all), f.Limit-len(res.letters))]
		}
		res.letters = append(res.letters, all...)
		if action != "list" && len(all) > 0 {
			ids := map[string][]string{}
			for _, d := range all {
				ids[d.Destination] = append(ids[d.Destination], d.ID)
			}
			for dest, dids := range ids {
				sel := dispatch.DeadLetterFilter{Site: site, Destination: dest, IDs: dids}
				var n int
				if action == "replay" {
					n, err = a.dead.ReplayDeadLetters(ctx, sel)
				} else {
					n, err = a.dead.DropDeadLetters(ctx, sel)
				}
				res.done += n
				if err != nil {
					return res, err
				}
			}
		}
		if f.Limit > 0 && len(res.letters) >= f.Limit {
			break
		}
	}
	return res, nil
}

// dlJSON is one letter as printed by --json.
type dlJSON struct {
	ID          string          `json:"id"`
	Site        string          `json:"site"`
	Destination string          `json:"destination"`
	Reason      string          `json:"reason"`
	Message     string          `json:"message"`
	Attempts    int             `json:"attempts"`
	FailedAt    time.Time       `json:"failed_at"`
	EventName   string          `json:"event_name,omitempty"`
	EventID     string          `json:"event_id,omitempty"`
	Event       json.RawMessage `json:"event,omitempty"`
}

func printDeadLetters(w io.Writer, action string, res dlResult, jsonOut bool) {
	if jsonOut {
		enc := json.NewEncoder(w)
		for _, l := range res.letters {
			_ = enc.Encode(dlJSON{ID: l.ID, Site: l.Site, Destination: l.Destination, Reason: l.Reason, Message: l.Message,
				Attempts: l.Attempts, FailedAt: l.FailedAt.UTC(), EventName: l.Event.EventName, EventID: l.Event.EventID,
				Event: l.Raw})
		}
		if action != "list" {
			done := map[string]string{"replay": "replayed", "drop": "dropped"}[action]
			_ = enc.Encode(map[string]any{done: res.done, "selected": len(res.letters)})
		}
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSITE\tDESTINATION\tREASON\tATTEMPTS\tFAILED AT\tEVENT\tMESSAGE")
	for _, l := range res.letters {
		msg := l.Message
		if len(msg) > 80 {
			msg = strings.ToValidUTF8(msg[:77], "") + "..."
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s %s\t%s\n", l.ID, l.Site, l.Destination, l.Reason, l.Attempts,
			l.FailedAt.UTC().Format(time.RFC3339), l.Event.EventName, l.Event.EventID, msg)
	}
	_ = tw.Flush()
	switch action {
	case "list":
		fmt.Fprintf(w, "%d dead letters\n", len(res.letters))
	case "replay":
		fmt.Fprintf(w, "replayed %d of %d selected dead letters\n", res.done, len(res.letters))
	case "drop":
		fmt.Fprintf(w, "dropped %d of %d selected dead letters\n", res.done, len(res.letters))
	}
}
