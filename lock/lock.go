// Package lock owns the run-serializing lock: taking an advisory flock(2) on
// the lock file, verifying that the path still names the locked file,
// describing who holds it (the holder record and the kernel's view), and
// releasing it. It also owns the facts about processes that the lock needs
// (liveness, start times, who holds a descriptor) and the shim for legacy
// mkdir lock directories.
//
// It knows nothing of command lines, hooks or log formats: it returns facts
// and errors, and its callers decide what to log and which status to exit
// with.
//
// The lock belongs to an open file description. The kernel drops it when the
// last descriptor of that description is closed, which is what makes it
// survive kill -9 of its holder: no stale state is ever left to clean up.
package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// DefaultPath is the lock path the legacy hooks used, kept so that old and
// new hooks contend on one name during a rollout.
const DefaultPath = "/tmp/buildbench-runner.lock"

// ErrBusy reports that another holder has the lock. Acquire wraps it, so test
// with errors.Is.
var ErrBusy = errors.New("lock is busy")

// UnusableError reports a lock path that cannot be used safely: a symlink, a
// FIFO or device, another user's file, a directory that is not a legacy lock,
// or a filesystem that cannot lock. The tool never runs unlocked instead.
type UnusableError struct {
	Path   string
	Reason string // what is wrong, in an operator's words
	Hint   string // what to do about it; may be empty
	Err    error  // the underlying error, if any

	kind unusableKind
}

type unusableKind int

const (
	kindOther unusableKind = iota
	kindForeign
	kindDir
)

func (e *UnusableError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("lock %s: %s: %v", e.Path, e.Reason, e.Err)
	}
	return fmt.Sprintf("lock %s: %s", e.Path, e.Reason)
}

func (e *UnusableError) Unwrap() error { return e.Err }

// Options says how Acquire waits.
type Options struct {
	// Wait makes Acquire sleep in flock(2) until the lock is free or ctx
	// ends. Without it Acquire gives up at once with ErrBusy.
	Wait bool

	// WhileBlocked, when set, runs in its own goroutine while Acquire sleeps
	// in flock(2), with a context that ends when the wait does. A caller uses
	// it to notice that the holder died and to clear what it left behind;
	// the sleeping flock then wakes on its own. Acquire returns only after
	// WhileBlocked has returned, so it must end soon after its context.
	WhileBlocked func(ctx context.Context)

	// LegacyMaxAge is the age after which a legacy lock directory without
	// a usable pid file counts as stale; 0 means DefaultLegacyMaxAge.
	LegacyMaxAge time.Duration
}

// Holder is a held lock. Its descriptor is a raw one, not an *os.File, so
// that no finalizer can close it (and drop the lock) while it is meant to be
// held. The zero value is not usable; Acquire makes holders.
type Holder struct {
	path string
	fd   int
	dev  uint64
	ino  uint64

	// Migrated is set when taking the lock migrated a legacy directory.
	Migrated *Migration
}

// Path returns the lock path.
func (h *Holder) Path() string { return h.path }

// Fd returns the locked descriptor. Every process that inherits a copy of it
// shares the lock, which lasts until the last copy is closed.
func (h *Holder) Fd() int { return h.fd }

// Release closes the descriptor. The lock is free once no other process has
// a copy of it (a child that inherited it keeps it). The lock file is never
// deleted: deleting it would let two processes lock two inodes at one path.
// It uses close, not LOCK_UN, because LOCK_UN would free the lock for every
// inherited copy too.
func (h *Holder) Release() error {
	if h.fd < 0 {
		return nil
	}
	err := closeFd(h.fd)
	h.fd = -1
	return err
}

// Acquire takes an exclusive lock on path and returns its holder. After
// success the path names the very file that is locked: if the file was
// removed or replaced while Acquire waited, it starts over on the new one.
//
// Without o.Wait it fails at once with an error wrapping ErrBusy when the
// lock is held. With o.Wait it sleeps in flock(2) and wakes the moment the
// lock is released; when ctx ends first the wait is cancelled inside the
// kernel, so an abandoned wait never takes the lock later, and the error
// wraps both ErrBusy and ctx.Err().
//
// A path that cannot be used (see UnusableError) is refused before any
// lock is taken, and nothing at the path is changed.
func Acquire(ctx context.Context, path string, o Options) (*Holder, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBusy, err)
		}
		fd, err := openLockFile(path)
		var ue *UnusableError
		if errors.As(err, &ue) && ue.kind == kindDir {
			h, err := takeLegacy(ctx, path, o)
			if errors.Is(err, errRetry) {
				continue // the path changed under us: decide afresh
			}
			return h, err
		}
		if err != nil {
			return nil, err
		}

		if o.Wait {
			err = waitFlock(ctx, fd, o.WhileBlocked)
		} else {
			err = tryFlock(fd)
		}
		if err != nil {
			_ = closeFd(fd)
			if errors.Is(err, ErrBusy) {
				return nil, err
			}
			return nil, unusableFlock(path, err)
		}

		h, same, err := verifyInode(path, fd)
		if err != nil {
			_ = closeFd(fd)
			return nil, err
		}
		if same {
			return h, nil
		}
		// The path was deleted or replaced while we waited: the lock we hold
		// guards nothing. Release it and contend for the file now there.
		_ = closeFd(fd)
	}
}

// StillHeld reports whether the path still names the locked file. A holder
// whose file was deleted (by a /tmp cleaner, say) still excludes those who
// opened the old inode, but not newcomers: callers report it.
func (h *Holder) StillHeld() (bool, error) {
	if h.fd < 0 {
		return false, nil
	}
	st, err := os.Lstat(h.path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	dev, ino := fileID(st)
	return dev == h.dev && ino == h.ino, nil
}

// runWhileBlocked starts f, if set, with a context that the returned stop
// cancels; stop returns once f has returned.
func runWhileBlocked(ctx context.Context, f func(context.Context)) (stop func()) {
	if f == nil {
		return func() {}
	}
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(fctx)
	}()
	return func() {
		cancel()
		<-done
	}
}
