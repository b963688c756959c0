package supervise

import (
	"context"
	"os"
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
func watchHolder(ctx context.Context, path string, grace time.Duration) []int {
	in, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil
	}
	defer unix.Close(in)
	// A new record is written in place; a cleaner may delete the file.
	const mask = unix.IN_MODIFY | unix.IN_ATTRIB | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF
	if _, err := unix.InotifyAddWatch(in, path, mask); err != nil {
		return nil
	}
	wake, stop := ctxPipe(ctx)
	defer stop()

	var ended []int
	for ctx.Err() == nil {
		rec, rerr := lock.ReadRecord(path)
		pidfd := -1
		if rerr == nil && rec.State == lock.StateRunning {
			switch lock.Judge(rec.Supervisor()) {
			case lock.Dead:
				e, _ := endLeftovers(ctx, path, rec, grace)
				ended = append(ended, e...)
			case lock.Alive:
				pidfd, _ = unix.PidfdOpen(rec.PID, 0)
			}
		}
		fds := []unix.PollFd{{Fd: int32(in), Events: unix.POLLIN}, {Fd: int32(wake), Events: unix.POLLIN}}
		if pidfd >= 0 {
			fds = append(fds, unix.PollFd{Fd: int32(pidfd), Events: unix.POLLIN})
		}
		for {
			_, err := unix.Poll(fds, -1)
			if err != unix.EINTR {
				break
			}
		}
		if pidfd >= 0 {
			unix.Close(pidfd)
		}
		drain(in)
	}
	return ended
}

// ctxPipe returns a descriptor that polls readable once ctx ends.
func ctxPipe(ctx context.Context) (int, func()) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return -1, func() {}
	}
	quit := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			_, _ = unix.Write(p[1], []byte{0})
		case <-quit:
		}
	}()
	return p[0], func() {
		close(quit)
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
