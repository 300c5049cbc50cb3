package app

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/tagway/tagway/routing/dispatch"
)

// LimitSettings bound what Redis keeps that outsiders can make grow.
//
//	TAGWAY_IDENTITY_MAX_PER_SITE  visitors with stored identifiers per site (default 500000; 0: no cap)
//	TAGWAY_DEADLETTER_MAX_LEN     dead letters kept per destination, about (default 100000; 0: no cap)
//	TAGWAY_DEADLETTER_MAX_AGE     how long a dead letter is kept (default 2160h, 90 days; 0: no cap)
type LimitSettings struct {
	IdentityMaxPerSite int64
	DeadLetters        dispatch.DeadLetterCaps
}

func readLimitSettings(getenv func(string) string) (LimitSettings, error) {
	l := LimitSettings{IdentityMaxPerSite: dispatch.DefaultIdentityMaxPerSite,
		DeadLetters: dispatch.DeadLetterCaps{MaxLen: dispatch.DefaultDeadLetterMaxLen, MaxAge: dispatch.DefaultDeadLetterMaxAge}}
	var errs []error
	for _, c := range []struct {
		key string
		dst *int64
	}{{"TAGWAY_IDENTITY_MAX_PER_SITE", &l.IdentityMaxPerSite}, {"TAGWAY_DEADLETTER_MAX_LEN", &l.DeadLetters.MaxLen}} {
		v := strings.TrimSpace(getenv(c.key))
		if v == "" {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("%s: %q is not a whole number (0: no cap)", c.key, v))
			continue
		}
		*c.dst = cmpNoCap(n)
	}
	if v := strings.TrimSpace(getenv("TAGWAY_DEADLETTER_MAX_AGE")); v != "" {
		d, err := time.ParseDuration(v)
		switch {
		case err != nil || d < 0:
			errs = append(errs, fmt.Errorf("TAGWAY_DEADLETTER_MAX_AGE: %q is not a duration such as 720h (0: no cap)", v))
		case d == 0:
			l.DeadLetters.MaxAge = -1
		default:
			l.DeadLetters.MaxAge = d
		}
	}
	return l, errors.Join(errs...)
}

// cmpNoCap maps a setting's 0 (no cap) to the engine's negative.
func cmpNoCap(n int64) int64 {
	if n == 0 {
		return -1
	}
	return n
}
