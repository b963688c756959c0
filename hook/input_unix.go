//go:build unix

package hook

import (
	"io"
	"os"
	"runtime"
	"time"

	"golang.org/x/sys/unix"
)

// newPollSource reads f's descriptor after poll(2) says it is readable, so
// that the deadline holds whatever f is (a pipe, a terminal, a socket, a
// regular file, which always polls readable) without touching its flags:
// the descriptor is shared with the agent that wrote to it. It returns nil
// when f has no descriptor to poll.
func newPollSource(f *os.File, deadline time.Time) *boundedSource {
	rc, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	fd := -1
	if rc.Control(func(p uintptr) { fd = int(p) }) != nil || fd < 0 {
		return nil
	}

	s := &boundedSource{deadline: deadline, close: func() { runtime.KeepAlive(f) }}
	s.read = func(p []byte, now bool) (int, error) {
		if len(p) == 0 {
			return 0, nil
		}
		for {
			timeout := 0
			if !now {
				left := time.Until(deadline)
				if left <= 0 {
					return 0, errDeadline
				}
				timeout = int((left + time.Millisecond - 1) / time.Millisecond)
			}
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
			n, err := unix.Poll(pfd, timeout)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return 0, &os.PathError{Op: "poll", Path: f.Name(), Err: err}
			}
			if n == 0 {
				if now {
					return 0, nil
				}
				continue // the loop sees whether the deadline has passed
			}
			if pfd[0].Revents&unix.POLLNVAL != 0 {
				return 0, &os.PathError{Op: "read", Path: f.Name(), Err: unix.EBADF}
			}
			// A descriptor in non-blocking mode may still say EAGAIN after a
			// wake-up another reader raced us to; poll again.
			m, err := unix.Read(fd, p)
			switch {
			case err == unix.EINTR || err == unix.EAGAIN:
				if now {
					return 0, nil
				}
				continue
			case err != nil:
				return 0, &os.PathError{Op: "read", Path: f.Name(), Err: err}
			case m == 0:
				return 0, io.EOF
			}
			return m, nil
		}
	}
	return s
}
