package lock

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// DefaultLegacyMaxAge is the age after which a legacy directory without a
// usable pid file counts as stale.
const DefaultLegacyMaxAge = time.Hour

// errRetry asks Acquire to decide afresh: the path changed under us.
var errRetry = errors.New("lock path changed; decide again")

// LegacyDecision is the judgement of a legacy lock directory.
type LegacyDecision struct {
	Stale  bool
	Reason string
	PID    int
}

// Migration describes a legacy directory turned into a lock file.
type Migration struct {
	OldPID int
	Reason string
}

// DescribeLegacy reports on the legacy directory at path without changing it.
func DescribeLegacy(path string) LegacyStatus { return LegacyStatus{} }

func takeLegacy(ctx context.Context, path string, o Options) (*Holder, error) {
	return nil, &UnusableError{Path: path, Reason: "is a directory, not a lock file", kind: kindDir,
		Hint: "a legacy mkdir lock? see 'runnerlock migrate --help'"}
}

// LegacyBusyError reports a legacy lock directory whose holder is alive. It
// wraps ErrBusy.
type LegacyBusyError struct {
	Path string
	PID  int // 0 when the directory has no usable pid file
}

func (e *LegacyBusyError) Error() string {
	if e.PID > 0 {
		return "legacy lock " + e.Path + " is held by pid " + itoa(e.PID)
	}
	return "legacy lock " + e.Path + " is held"
}

func (e *LegacyBusyError) Unwrap() error { return ErrBusy }

func itoa(n int) string { return strconv.Itoa(n) }
