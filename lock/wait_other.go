//go:build unix && !linux

package lock

import (
	"context"
	"fmt"

	"golang.org/x/sys/unix"
)

// waitFlock sleeps in flock(2) until the lock is ours or ctx ends. Outside
// Linux the wait cannot be cancelled inside the kernel (see wait_linux.go),
// so an abandoned wait keeps sleeping in its goroutine and, should it win
// the lock later, closes it at once: it may hold the lock for that instant.
func waitFlock(ctx context.Context, fd int, whileBlocked func(context.Context)) error {
	own, err := unix.Dup(fd)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() {
		for {
			err := unix.Flock(own, unix.LOCK_EX)
			if err != unix.EINTR {
				done <- err
				return
			}
		}
	}()

	stopBlocked := runWhileBlocked(ctx, whileBlocked)
	defer stopBlocked()

	select {
	case err := <-done:
		_ = unix.Close(own)
		return err
	case <-ctx.Done():
		go func() { <-done; _ = unix.Close(own) }()
		return fmt.Errorf("%w: %w", ErrBusy, ctx.Err())
	}
}
