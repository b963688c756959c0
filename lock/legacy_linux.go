package lock

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// legacyHolder judges pid as the writer of a pid file last written at
// written: Dead when no such process exists, it is a zombie, or (reused)
// the process now at that pid started after the file was written or the
// file predates this boot. Anything that cannot be read counts as alive.
// start is the process's start time when it was read.
//
// A pid written in another pid namespace (a container sharing /tmp) names
// some other process in ours, or none: it cannot be judged here, and is
// judged as if it were ours. The README lists this limit.
func legacyHolder(pid int, written time.Time) (l Liveness, reused bool, start uint64) {
	boot, bootErr := bootTime()
	if bootErr == nil && written.Before(boot.Add(-legacyClockSlack)) {
		// The writer was alive before this boot; every process now alive
		// started after it.
		if errors.Is(unix.Kill(pid, 0), unix.ESRCH) {
			return Dead, false, 0
		}
		return Dead, true, 0
	}

	l = judgePID(pid, func(st uint64) Liveness {
		start = st
		if bootErr != nil {
			return Unknown
		}
		tck := uint64(clockTicks())
		started := boot.Add(time.Duration(st/tck)*time.Second +
			time.Duration(st%tck)*time.Second/time.Duration(tck))
		if started.After(written.Add(legacyClockSlack)) {
			reused = true
			return Dead
		}
		return Alive
	})
	if l == Dead && !reused {
		// judgePID reads a missing /proc/PID after kill said EPERM as an
		// exit in between; with /proc mounted hidepid=, another user's
		// process is missing there while alive. Ask kill once more.
		if err := unix.Kill(pid, 0); err == nil || errors.Is(err, unix.EPERM) {
			if _, _, serr := procStat(pid); errors.Is(serr, os.ErrNotExist) {
				return Unknown, false, 0
			}
		}
	}
	return l, reused, start
}

// bootTime is the btime line of /proc/stat: when this boot started, to the
// second.
func bootTime() (time.Time, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "btime "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil || n <= 0 {
				return time.Time{}, errors.New("malformed btime in /proc/stat")
			}
			return time.Unix(n, 0), nil
		}
	}
	return time.Time{}, errors.New("no btime in /proc/stat")
}

// clockTicks is the unit of /proc/PID/stat's start time, sysconf(_SC_CLK_TCK),
// which the kernel hands every process in its auxiliary vector as AT_CLKTCK.
// It is 100 on every common architecture, the fallback.
var clockTicks = sync.OnceValue(func() int {
	const atClkTck = 17
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	word := int(unsafe.Sizeof(uintptr(0)))
	get := func(p []byte) uint64 {
		if word == 8 {
			return binary.NativeEndian.Uint64(p)
		}
		return uint64(binary.NativeEndian.Uint32(p))
	}
	for i := 0; i+2*word <= len(b); i += 2 * word {
		if k := get(b[i:]); k == atClkTck {
			if v := get(b[i+word:]); v > 0 && v < 1<<20 {
				return int(v)
			}
		} else if k == 0 {
			break
		}
	}
	return 100
})

// pidMax is /proc/sys/kernel/pid_max: pids are below it. The fallback is
// the kernel's limit on 64-bit systems.
func pidMax() int {
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && n > 1 {
			return n
		}
	}
	return 1 << 22
}

// renameExchange swaps two names in one step. A variable for the tests,
// which stand in for a filesystem without the exchange.
var renameExchange = func(olddirfd int, oldpath string, newdirfd int, newpath string) error {
	return unix.Renameat2(olddirfd, oldpath, newdirfd, newpath, unix.RENAME_EXCHANGE)
}

// renameNoReplace renames, failing when newpath exists.
func renameNoReplace(olddirfd int, oldpath string, newdirfd int, newpath string) error {
	return unix.Renameat2(olddirfd, oldpath, newdirfd, newpath, unix.RENAME_NOREPLACE)
}

// exchangeUnsupported reports the errors of renameat2 on a kernel or a
// filesystem that has no RENAME_EXCHANGE (renameat2(2): EINVAL).
func exchangeUnsupported(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) ||
		errors.Is(err, unix.EOPNOTSUPP)
}

// coarsePoll is how often waitLegacy looks again where the kernel gives it
// neither a pidfd nor inotify to sleep on.
const coarsePoll = time.Second

// waitLegacy sleeps until the busy legacy directory at path, judged by f and
// d, may deserve another verdict, and returns nil; it returns ctx.Err() when
// ctx ends first. It wakes when the holder exits (pidfd_open(2) polls
// readable once the process has exited, zombie or not), when the directory
// is removed, moved or replaced or something in it is written (inotify on
// the directory and on its parent), and, for a directory without a usable
// pid, the moment it ages past maxAge. Only where the kernel has neither
// pidfds (before Linux 5.3) nor inotify does it look again every
// coarsePoll.
func waitLegacy(ctx context.Context, path string, f *legacyFacts, d LegacyDecision,
	maxAge time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w := watchLegacy(path)
	defer w.close()

	pidfd := -1
	if d.PID > 0 {
		fd, err := unix.PidfdOpen(d.PID, 0)
		if errors.Is(err, unix.ESRCH) {
			return nil // gone already
		}
		if err == nil {
			defer unix.Close(fd)
			// The pid may have been reused between the judgement and now. (A
			// holder that exited meanwhile leaves a pidfd that polls readable
			// at once; a start time we could not read then cannot be compared.)
			if start, _, serr := procStat(d.PID); serr == nil && f.start != 0 && start != f.start {
				return nil
			}
			pidfd = fd
		}
	}
	// The watches are in place: anything that changes after this last look
	// wakes us.
	if legacyChanged(path, f) {
		return nil
	}

	var deadline time.Time
	if d.Reason == LegacyNoPIDYoung {
		deadline = f.newest().Add(maxAge + 10*time.Millisecond)
	}
	coarse := w.fd < 0 && pidfd < 0
	wake, stop := ctxWake(ctx)
	defer stop()

	for {
		timeout := -1
		if !deadline.IsZero() {
			left := time.Until(deadline)
			if left <= 0 {
				return nil
			}
			timeout = int((left + time.Millisecond - 1) / time.Millisecond)
		}
		if coarse || wake < 0 {
			step := coarsePoll
			if wake < 0 {
				step = 100 * time.Millisecond // to notice ctx
			}
			if timeout < 0 || timeout > int(step/time.Millisecond) {
				timeout = int(step / time.Millisecond)
			}
		}

		fds := make([]unix.PollFd, 0, 3)
		for _, fd := range []int{wake, w.fd, pidfd} {
			if fd >= 0 {
				fds = append(fds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
			}
		}
		_, err := unix.Poll(fds, timeout)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.SyscallError{Syscall: "poll", Err: err}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		for _, p := range fds {
			switch {
			case p.Revents == 0 || int(p.Fd) == wake:
			case int(p.Fd) == pidfd:
				return nil // the holder exited
			case int(p.Fd) == w.fd:
				if w.relevant() {
					return nil
				}
			}
		}
		if coarse && (legacyChanged(path, f) || d.PID > 0 && holderGone(d.PID, f)) {
			return nil
		}
	}
}

// holderGone is the coarse poll's look at the holder.
func holderGone(pid int, f *legacyFacts) bool {
	l, _, _ := legacyHolder(pid, f.pidMtime)
	return l == Dead
}

// legacyChanged reports whether path no longer names the directory of f as
// it was read: another inode, or a different time on it or on its pid file.
func legacyChanged(path string, f *legacyFacts) bool {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil ||
		uint64(st.Dev) != f.dev || uint64(st.Ino) != f.ino ||
		!time.Unix(st.Mtim.Unix()).Equal(f.mtime) {
		return true
	}
	var pst unix.Stat_t
	err := unix.Lstat(filepath.Join(path, "pid"), &pst)
	if err != nil {
		return f.hasPIDFile
	}
	return !f.hasPIDFile || !time.Unix(pst.Mtim.Unix()).Equal(f.pidMtime)
}

// legacyWatch is an inotify instance that watches a legacy directory and,
// in its parent, the directory's name. fd is -1 when inotify is missing.
type legacyWatch struct {
	fd, parent, self int
	base             string
}

func watchLegacy(path string) *legacyWatch {
	w := &legacyWatch{fd: -1, parent: -1, self: -1, base: filepath.Base(path)}
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return w
	}
	const inParent = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO |
		unix.IN_ONLYDIR
	const inSelf = unix.IN_CREATE | unix.IN_DELETE | unix.IN_MODIFY | unix.IN_ATTRIB |
		unix.IN_CLOSE_WRITE | unix.IN_MOVED_FROM | unix.IN_MOVED_TO | unix.IN_DELETE_SELF |
		unix.IN_MOVE_SELF | unix.IN_ONLYDIR | unix.IN_DONT_FOLLOW
	p, perr := unix.InotifyAddWatch(fd, filepath.Dir(path), inParent)
	s, serr := unix.InotifyAddWatch(fd, path, inSelf)
	if perr != nil && serr != nil {
		unix.Close(fd)
		return w
	}
	w.fd = fd
	if perr == nil {
		w.parent = p
	}
	if serr == nil {
		w.self = s
	}
	return w
}

func (w *legacyWatch) close() {
	if w.fd >= 0 {
		unix.Close(w.fd)
	}
}

// relevant drains the pending events and reports whether any concerns the
// directory: the parent directory also reports every other name in it.
func (w *legacyWatch) relevant() bool {
	var buf [8192]byte
	hit := false
	for {
		n, err := unix.Read(w.fd, buf[:])
		if err == unix.EINTR {
			continue
		}
		if n <= 0 || err != nil {
			return hit
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			end := off + unix.SizeofInotifyEvent + int(ev.Len)
			if end > n {
				break
			}
			name := string(bytes.TrimRight(buf[off+unix.SizeofInotifyEvent:end], "\x00"))
			switch {
			case ev.Mask&unix.IN_Q_OVERFLOW != 0:
				hit = true
			case int(ev.Wd) == w.self:
				hit = true
			case int(ev.Wd) == w.parent && name == w.base:
				hit = true
			}
			off = end
		}
	}
}

// ctxWake returns an eventfd that polls readable once ctx ends, and a stop
// that returns only when nothing can write to it any more, then closes it.
// The fd is -1 when no eventfd could be made; callers then poll ctx.
func ctxWake(ctx context.Context) (int, func()) {
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return -1, func() {}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-ctx.Done():
			var one [8]byte
			binary.NativeEndian.PutUint64(one[:], 1)
			_, _ = unix.Write(fd, one[:])
		case <-quit:
		}
	}()
	return fd, func() {
		close(quit)
		<-done
		unix.Close(fd)
	}
}
