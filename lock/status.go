package lock

import (
	"errors"
	"io/fs"
	"os"
	"slices"
	"time"
)

// States that Describe reports.
const (
	Free   = "free"
	Held   = "held"
	Legacy = "legacy"
)

// Status is what can be said of a lock path without touching the lock.
type Status struct {
	State string
	Path  string

	// Record is the holder record in the lock file, when one was readable.
	// While the lock is free it describes the last holder.
	Record *Record

	// Holders are the processes whose descriptor holds the lock, by
	// /proc/PID/fdinfo (a waiter or a reader is not among them).
	Holders []int

	// Supervisor is the live supervisor among the holders, as the record
	// names it; 0 when the record names no live holder.
	Supervisor int

	// Legacy is set for a legacy lock directory.
	Legacy *LegacyStatus
}

// LegacyStatus describes a legacy mkdir lock directory.
type LegacyStatus struct {
	PID      int           // the pid in PATH/pid, 0 when there is none usable
	Alive    bool          // whether that pid names the live writer of the pid file
	Age      time.Duration // since the directory was made
	Decision LegacyDecision
}

// Describe reports the state of the lock at path. It never takes the lock,
// even for an instant, and never changes anything: the kernel says whether
// the file is locked (/proc/locks), the descriptors say who holds it, and
// the record says what they are running.
func Describe(path string) (Status, error) {
	st := Status{State: Free, Path: path}
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, &UnusableError{Path: path, Reason: "cannot inspect the lock path", Err: err}
	}
	if fi.IsDir() {
		st.State = Legacy
		d := DescribeLegacy(path)
		st.Legacy = &d
		return st, nil
	}
	if err := checkKind(path, fi); err != nil && !isForeign(err) {
		return st, err
	}

	if rec, err := ReadRecord(path); err == nil {
		st.Record = &rec
	}
	locked, err := KernelLocked(path)
	if err != nil {
		return st, err
	}
	holders, _ := Holders(path)
	st.Holders = holders
	if locked || len(holders) > 0 {
		st.State = Held
	}
	if st.State == Held && st.Record != nil && st.Record.State == StateRunning &&
		slices.Contains(holders, st.Record.PID) && Judge(st.Record.Supervisor()) != Dead {
		st.Supervisor = st.Record.PID
	}
	return st, nil
}

// isForeign reports a refusal for another user's file, which status may
// still describe.
func isForeign(err error) bool {
	var ue *UnusableError
	return errors.As(err, &ue) && ue.kind == kindForeign
}
