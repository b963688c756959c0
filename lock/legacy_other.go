//go:build unix && !linux

package lock

import (
	"context"
	"errors"
	"time"

	"golang.org/x/sys/unix"
)

// legacyHolder outside Linux has only kill(2): no such process is proof of
// death, and anything else counts as alive, since there is no start time to
// tell a reused pid from the writer.
func legacyHolder(pid int, _ time.Time) (Liveness, bool, uint64) {
	if errors.Is(unix.Kill(pid, 0), unix.ESRCH) {
		return Dead, false, 0
	}
	return Unknown, false, 0
}

// pidMax outside Linux: a bound that no system's pids reach.
func pidMax() int { return 1 << 22 }

// renameExchange: only Linux has renameat2's RENAME_EXCHANGE, so outside it
// every migration is refused; there is no fallback to a plain rename.
var renameExchange = func(int, string, int, string) error { return unix.ENOSYS }

func renameNoReplace(int, string, int, string) error { return unix.ENOSYS }

func exchangeUnsupported(err error) bool { return errors.Is(err, unix.ENOSYS) }

// waitLegacy outside Linux has neither pidfds nor inotify: it looks again
// every second.
func waitLegacy(ctx context.Context, path string, f *legacyFacts, d LegacyDecision,
	maxAge time.Duration) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if !pathNames(path, f.dev, f.ino) {
			return nil
		}
		if d.PID > 0 {
			if l, _, _ := legacyHolder(d.PID, f.pidMtime); l == Dead {
				return nil
			}
		} else if time.Since(f.newest()) > maxAge {
			return nil
		}
	}
}
