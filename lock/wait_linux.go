package lock

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// waitFlock sleeps in flock(2) on fd until the lock is ours or ctx ends.
//
// Go installs its signal handlers with SA_RESTART, so no signal can make a
// blocked flock return EINTR the way flock(1) cancels its wait. Instead the
// wait is cancelled like this: the descriptor number is pointed at a private
// memfd with dup2, and the sleeping thread is sent SIGURG (the runtime's own
// preemption signal, harmless to it). The kernel takes the waiter off the
// lock's queue, restarts the call, and the restarted flock resolves the
// number afresh and locks the memfd instead, which nobody else can contend
// for. The lock file's description loses its last reference, so even a wait
// that won the lock at the last instant gives it back at once. Either way an
// abandoned wait never holds the lock.
func waitFlock(ctx context.Context, fd int, whileBlocked func(context.Context)) error {
	type started struct{ tid int }
	ready := make(chan started, 1)
	done := make(chan error, 1)

	go func() {
		// The thread is never unlocked: its signal mask is changed below, so
		// it exits with this goroutine instead of going back to the pool.
		runtime.LockOSThread()
		var set unix.Sigset_t
		sigaddset(&set, unix.SIGURG)
		// A caller that started us with SIGURG blocked must not make the
		// wait uncancellable.
		_ = unix.PthreadSigmask(unix.SIG_UNBLOCK, &set, nil)
		ready <- started{tid: unix.Gettid()}
		for {
			err := unix.Flock(fd, unix.LOCK_EX)
			if err != unix.EINTR {
				done <- err
				return
			}
		}
	}()
	tid := (<-ready).tid

	stopBlocked := runWhileBlocked(ctx, whileBlocked)
	defer stopBlocked()

	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}

	if err := cancelFlock(fd, tid, done); err != nil {
		return err
	}
	return fmt.Errorf("%w: %w", ErrBusy, ctx.Err())
}

// cancelFlock ends the wait of the thread tid on fd, as waitFlock explains,
// and returns once that thread's flock has returned.
func cancelFlock(fd, tid int, done <-chan error) error {
	stand, err := unix.MemfdCreate("runnerlock-cancelled-wait", unix.MFD_CLOEXEC)
	if err != nil {
		stand, err = unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	}
	if err != nil {
		return fmt.Errorf("cannot cancel a lock wait: %w", err)
	}
	defer unix.Close(stand)
	if err := unix.Dup3(stand, fd, unix.O_CLOEXEC); err != nil {
		return fmt.Errorf("cannot cancel a lock wait: %w", err)
	}

	pid := unix.Getpid()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		// A signal sent before the thread entered flock is harmless: that
		// flock then locks the memfd and returns at once.
		if err := unix.Tgkill(pid, tid, unix.SIGURG); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("cannot cancel a lock wait: %w", err)
		}
		select {
		case <-done:
			return nil
		case <-tick.C:
		}
	}
}

func sigaddset(set *unix.Sigset_t, sig unix.Signal) {
	n := uint(sig) - 1
	bits := uint(unsafe.Sizeof(set.Val[0]) * 8)
	set.Val[n/bits] |= 1 << (n % bits)
}
