package supervise

import (
	"context"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/buildbench/runnerlock/lock"
)

// EndLeftovers ends the processes that keep the lock of the orphaned run
// rec: those whose descriptor holds the lock at path and whose environment
// carries rec's run id. It returns the pids it ended and those that
// survived KILL. A holder not tied to rec (a fresh run that took the lock
// a moment ago and has not written its record yet) is never touched.
func EndLeftovers(path string, rec lock.Record, grace time.Duration) (ended, survivors []int) {
	return endLeftovers(context.Background(), path, rec, grace)
}

func endLeftovers(ctx context.Context, path string, rec lock.Record,
	grace time.Duration) (ended, survivors []int) {
	if rec.Run == "" {
		return nil, nil
	}
	me := os.Getpid()
	return endAll(ctx, grace, func() []int {
		holders, err := lock.Holders(path)
		if err != nil {
			return nil
		}
		var tied []int
		for _, pid := range holders {
			if pid != me && lock.RunOf(pid) == rec.Run {
				tied = append(tied, pid)
			}
		}
		return tied
	})
}

// watchHolder runs while we sleep in flock(2) on path: it watches the
// supervisor named by the holder record, and when that supervisor dies
// with its run still holding the lock, it ends the run's leftovers, so
// that our flock wakes. It returns the pids it ended when ctx ends.
//
// It sleeps on a pidfd of the supervisor and on inotify for a new record;
// when it has no pidfd to sleep on (the record names no live supervisor,
// or its leftovers are being ended), it looks again every recheck, so that
// a supervisor that died between two looks is never missed.
func watchHolder(ctx context.Context, path string, grace time.Duration) []int {
	const recheck = 200 * time.Millisecond
	in, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		in = -1
	} else {
		// Closing an inotify instance that had a watch waits for the
		// kernel's SRCU grace period (milliseconds): never on our way.
		defer func() { go unix.Close(in) }()
		// A new record is written in place; a cleaner may delete the file.
		const mask = unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF
		_, _ = unix.InotifyAddWatch(in, path, mask)
	}
	wake, stop := ctxPipe(ctx)
	defer stop()

	var ended []int
	for ctx.Err() == nil {
		timeout := recheck
		rec, rerr := lock.ReadRecord(path)
		pidfd := -1
		if rerr == nil && rec.State == lock.StateRunning && rec.PID > 0 {
			// Open the pidfd before judging: a supervisor that dies after
			// the pidfd is open makes it readable, one that died before is
			// judged dead.
			pidfd, _ = unix.PidfdOpen(rec.PID, 0)
			switch lock.Judge(rec.Supervisor()) {
			case lock.Dead:
				e, _ := endLeftovers(ctx, path, rec, grace)
				ended = append(ended, e...)
			case lock.Alive:
				if pidfd >= 0 {
					timeout = -1
				}
			}
		}
		fds := []unix.PollFd{{Fd: int32(wake), Events: unix.POLLIN}}
		if in >= 0 {
			fds = append(fds, unix.PollFd{Fd: int32(in), Events: unix.POLLIN})
		}
		if pidfd >= 0 {
			fds = append(fds, unix.PollFd{Fd: int32(pidfd), Events: unix.POLLIN})
		}
		ms := -1
		if timeout > 0 {
			ms = int(timeout / time.Millisecond)
		}
		for {
			if _, err := unix.Poll(fds, ms); err != unix.EINTR {
				break
			}
		}
		if pidfd >= 0 {
			unix.Close(pidfd)
		}
		if in >= 0 {
			drain(in)
		}
	}
	return ended
}

// ctxPipe returns a descriptor that polls readable once ctx ends, and a
// stop that closes it once nothing can write to it any more.
func ctxPipe(ctx context.Context) (int, func()) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return -1, func() {}
	}
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-ctx.Done():
			_, _ = unix.Write(p[1], []byte{0})
		case <-quit:
		}
	}()
	return p[0], func() {
		close(quit)
		<-done // the write above must not land on a reused descriptor number
		unix.Close(p[0])
		unix.Close(p[1])
	}
}

func drain(fd int) {
	var buf [4096]byte
	for {
		if n, err := unix.Read(fd, buf[:]); n <= 0 || err != nil {
			return
		}
	}
}

// strayGrace bounds the grace given to strays of a dead run: they hold no
// lock, and the new run waits for them.
const strayGrace = 2 * time.Second

// endStrays ends the processes of the dead run that no longer hold its
// lock but still carry its RUNNERLOCK_RUN: a child started with its
// descriptors closed (Python's subprocess does so by default) outlives a
// hard-killed supervisor without keeping the lock, and would otherwise go
// on working beside the next run. It returns the pids it ended.
func endStrays(run string, grace time.Duration) []int {
	if run == "" {
		return nil
	}
	me := os.Getpid()
	ended, _ := endAll(context.Background(), min(grace, strayGrace), func() []int {
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return nil
		}
		var tied []int
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil || pid == me {
				continue
			}
			if lock.RunOf(pid) == run {
				tied = append(tied, pid)
			}
		}
		return tied
	})
	return ended
}
