package supervise

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/buildbench/runnerlock/lock"
)

// killWait bounds the wait for KILL to take effect: a process stuck in the
// kernel (state D) can outlive it, and is reported instead of waited for.
const killWait = 2 * time.Second

// cleanEnv marks a process that Prepare already started afresh.
const cleanEnv = "RUNNERLOCK_CLEAN_START"

// Prepare readies the process to supervise, and must be called first in
// main. A Go program hands its children the signal mask it was started
// with, whatever it changes later, so a supervisor started with signals
// blocked (as some schedulers start jobs) starts itself again with an
// empty mask; signal dispositions need no such care, since the runtime
// resets every signal it handles to the default in a child. It also marks
// every descriptor that the caller left open close-on-exec, so that no run
// pins a descriptor it was never meant to have (a wrapper's lock on fd 9).
func Prepare() {
	// Descriptors from our caller: keep using them, never hand them on.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		markInheritedCloexec()
	}

	var cur unix.Sigset_t
	if unix.PthreadSigmask(unix.SIG_SETMASK, nil, &cur) != nil || cur == (unix.Sigset_t{}) {
		return
	}
	if os.Getenv(cleanEnv) != "" {
		return // started afresh once already; never loop
	}
	runtime.LockOSThread()
	exe, err := os.Executable()
	if err != nil {
		runtime.UnlockOSThread()
		return
	}
	var empty unix.Sigset_t
	_ = unix.PthreadSigmask(unix.SIG_SETMASK, &empty, nil)
	_ = unix.Exec(exe, os.Args, append(os.Environ(), cleanEnv+"=1"))
	// Exec failed: carry on with the mask we have.
	_ = unix.PthreadSigmask(unix.SIG_SETMASK, &cur, nil)
	runtime.UnlockOSThread()
}

func markInheritedCloexec() {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			_, _ = unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC)
		}
	}
}

var subreaperOnce sync.Once

// runCommand starts the command with the locked descriptor as fd 3, waits
// for it, and ends what it left behind.
func runCommand(ctx context.Context, h *lock.Holder, job *Job, env []string,
	started func(pid int)) (Result, error) {
	subreaperOnce.Do(func() {
		// Orphans of the run are re-parented to us, so that we can find
		// and end them, and reap them.
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
	})

	path, err := exec.LookPath(job.Args[0])
	if err != nil {
		return Result{}, startError(job.Args[0], err)
	}

	lockFd, err := unix.FcntlInt(uintptr(h.Fd()), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return Result{}, err
	}
	lockFile := os.NewFile(uintptr(lockFd), h.Path())
	defer lockFile.Close()

	cmd := &exec.Cmd{
		Path:       path,
		Args:       job.Args,
		Env:        env,
		Stdin:      orStd(job.Stdin, os.Stdin),
		Stdout:     orStd(job.Stdout, os.Stdout),
		Stderr:     orStd(job.Stderr, os.Stderr),
		ExtraFiles: []*os.File{lockFile},
	}
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	tty, foreground := foregroundTTY(orStd(job.Stdin, os.Stdin))
	if foreground {
		// Give the command the terminal, as a shell gives it a job: it can
		// read it, and Ctrl-C reaches its process group.
		attr.Foreground, attr.Ctty = true, tty
	}
	cmd.SysProcAttr = attr

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)

	// The parent-death signal follows the thread that started the child,
	// not the process (go.dev/issue/27505): start and wait on one locked
	// thread, which therefore lives exactly as long as the command.
	type waited struct {
		state *os.ProcessState
		err   error
	}
	startErr := make(chan error, 1)
	exited := make(chan waited, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			startErr <- err
			return
		}
		startErr <- nil
		err := cmd.Wait()
		exited <- waited{cmd.ProcessState, err}
	}()
	if err := <-startErr; err != nil {
		return Result{}, startError(job.Args[0], err)
	}
	lockFile.Close()
	t0 := time.Now()
	pgid := cmd.Process.Pid
	started(pgid)

	lost := watchLockFile(h)
	defer lost.stop()

	var timeoutC, killC <-chan time.Time
	if job.Timeout > 0 {
		t := time.NewTimer(job.Timeout)
		defer t.Stop()
		timeoutC = t.C
	}
	timedOut := false
	done := ctx.Done()
	var w waited
wait:
	for {
		select {
		case w = <-exited:
			break wait
		case s := <-sigs:
			_ = unix.Kill(-pgid, s.(syscall.Signal))
		case <-timeoutC:
			timedOut = true
			_ = unix.Kill(-pgid, unix.SIGTERM)
			k := time.NewTimer(job.grace())
			defer k.Stop()
			killC = k.C
		case <-killC:
			_ = unix.Kill(-pgid, unix.SIGKILL)
		case <-done:
			done = nil
			_ = unix.Kill(-pgid, unix.SIGTERM)
		case <-lost.c:
			lost.c = nil
			if job.onLockLost != nil {
				job.onLockLost()
			}
		}
	}
	res := Result{Duration: time.Since(t0)}
	if foreground {
		reclaimTerminal(tty)
	}

	ws, _ := w.state.Sys().(syscall.WaitStatus)
	switch {
	case ws.Signaled():
		res.Signal = ws.Signal()
		res.Status = 128 + int(res.Signal)
		res.Outcome = Killed
	default:
		res.ExitCode = ws.ExitStatus()
		res.Status = res.ExitCode
		res.Outcome = Done
		if res.ExitCode != 0 {
			res.Outcome = PostError
		}
	}
	if timedOut {
		res.Outcome, res.Status = Timeout, ExitTimeout
	}

	// What the command left behind: its process group, and every orphan
	// that was re-parented to us.
	res.Leftovers, res.Survivors = endAll(context.Background(), job.grace(), func() []int {
		return leftovers(pgid)
	})
	if len(res.Survivors) == 0 {
		res.Leftovers, res.Survivors = converge(pgid, res.Leftovers)
	}
	reapChildren()
	return res, nil
}

// converge makes sure that nothing of the run is left: a scan of /proc can
// miss a process that forks and exits at once (a chain of them moves
// faster than a scan), but as subreaper we have a child for as long as any
// part of such a chain lives. So KILL the group and what a scan finds,
// reap, and repeat until we have no child and the group is empty, for at
// most killWait; what is left then is reported.
func converge(pgid int, ended []int) ([]int, []int) {
	seen := map[int]bool{}
	for _, pid := range ended {
		seen[pid] = true
	}
	deadline := time.Now().Add(killWait)
	for {
		reapChildren()
		if !mayHaveLeftovers(pgid) {
			return ended, nil
		}
		if time.Now().After(deadline) {
			return ended, leftovers(pgid)
		}
		_ = unix.Kill(-pgid, unix.SIGKILL)
		for _, pid := range leftovers(pgid) {
			_ = unix.Kill(pid, unix.SIGKILL)
			if !seen[pid] {
				seen[pid] = true
				ended = append(ended, pid)
			}
		}
		time.Sleep(time.Millisecond)
	}
}

// maxRounds bounds how often endAll looks again for processes that the
// ones it ended started meanwhile (a TERM trap that spawns a child).
const maxRounds = 8

// endAll ends every process that find returns, and looks again after each
// round, since a process being ended may start another: the first round is
// TERM, grace, KILL; later ones, whose grace was already spent, are KILL.
// It returns every pid it ended and those still alive at the end.
func endAll(ctx context.Context, grace time.Duration, find func() []int) (ended, survivors []int) {
	seen := map[int]bool{}
	for round := 0; round < maxRounds; round++ {
		pids := find()
		var fresh []int
		for _, pid := range pids {
			if !seen[pid] {
				seen[pid] = true
				ended = append(ended, pid)
			}
			fresh = append(fresh, pid)
		}
		if len(fresh) == 0 {
			return ended, nil
		}
		g := grace
		if round > 0 {
			g = 0
		}
		survivors = endProcesses(ctx, fresh, g)
		if ctx.Err() != nil {
			return ended, survivors
		}
		if len(survivors) == len(fresh) && round > 0 {
			// Nothing new died: they survive KILL (state D). Stop waiting.
			return ended, survivors
		}
	}
	return ended, survivors
}

func startError(name string, err error) error {
	switch {
	case errors.Is(err, exec.ErrNotFound), errors.Is(err, os.ErrNotExist):
		return &StartError{Status: ExitNotFound, Err: errors.New(name + ": command not found")}
	case errors.Is(err, os.ErrPermission), errors.Is(err, unix.ENOEXEC),
		errors.Is(err, unix.EISDIR):
		return &StartError{Status: ExitNotExecutable,
			Err: errors.New(name + ": cannot execute: " + rootCause(err))}
	}
	return &StartError{Status: ExitNotExecutable, Err: err}
}

func rootCause(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}

// foregroundTTY reports whether f is our controlling terminal with our
// process group in the foreground, and its descriptor.
func foregroundTTY(f *os.File) (int, bool) {
	if f == nil {
		return 0, false
	}
	fd := int(f.Fd())
	pgrp, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	if err != nil {
		return 0, false
	}
	return fd, pgrp == unix.Getpgrp()
}

// reclaimTerminal puts our process group back in the foreground. A
// background group that does so is sent SIGTTOU, which is ignored here.
func reclaimTerminal(tty int) {
	signal.Ignore(syscall.SIGTTOU)
	defer signal.Reset(syscall.SIGTTOU)
	_ = unix.IoctlSetPointerInt(tty, unix.TIOCSPGRP, unix.Getpgrp())
}

// leftovers returns the live processes in process group pgid and our
// descendants (orphans re-parented to us as subreaper, and theirs).
func leftovers(pgid int) []int {
	if !mayHaveLeftovers(pgid) {
		return nil
	}
	me := os.Getpid()
	type proc struct{ ppid, pgrp int }
	procs := map[int]proc{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		pgrp, _ := strconv.Atoi(f[2])
		procs[pid] = proc{ppid, pgrp}
	}
	var out []int
	for pid, p := range procs {
		if pid == me {
			continue
		}
		if p.pgrp == pgid || descends(pid, me, func(q int) int { return procs[q].ppid }) {
			out = append(out, pid)
		}
	}
	return out
}

// mayHaveLeftovers answers the common case, a command that left nothing,
// without reading /proc: the group is empty and we have no child at all
// (every orphan of the run is re-parented to us, so a leftover outside the
// group would be our child or a child's descendant).
func mayHaveLeftovers(pgid int) bool {
	if err := unix.Kill(-pgid, 0); err != unix.ESRCH {
		return true
	}
	var info unix.Siginfo
	err := unix.Waitid(unix.P_ALL, 0, &info, unix.WEXITED|unix.WSTOPPED|unix.WNOHANG|unix.WNOWAIT, nil)
	return err != unix.ECHILD
}

func descends(pid, ancestor int, parent func(int) int) bool {
	for i := 0; i < 4096 && pid > 1; i++ {
		pid = parent(pid)
		if pid == ancestor {
			return true
		}
	}
	return false
}

// endProcesses sends TERM to pids, waits up to grace for them to exit,
// sends KILL to the rest and waits a little more; it returns those still
// alive. Signals go through pidfds, so a pid reused meanwhile is never hit.
func endProcesses(ctx context.Context, pids []int, grace time.Duration) []int {
	fds := map[int]int{}
	for _, pid := range pids {
		fd, err := unix.PidfdOpen(pid, 0)
		if err != nil {
			continue // already gone
		}
		fds[pid] = fd
	}
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()

	if grace > 0 {
		signalAll(fds, unix.SIGTERM)
		waitExit(ctx, fds, grace)
	}
	if len(fds) == 0 {
		return nil
	}
	signalAll(fds, unix.SIGKILL)
	waitExit(context.Background(), fds, killWait)
	var alive []int
	for pid := range fds {
		alive = append(alive, pid)
	}
	return alive
}

func signalAll(fds map[int]int, sig unix.Signal) {
	for _, fd := range fds {
		_ = unix.PidfdSendSignal(fd, sig, nil, 0)
	}
}

// waitExit waits until every process in fds has exited (removing each
// from fds) or d has passed. A pidfd polls readable once its process has
// exited, zombie or not.
func waitExit(ctx context.Context, fds map[int]int, d time.Duration) {
	deadline := time.Now().Add(d)
	for len(fds) > 0 {
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			return
		}
		pids := make([]int, 0, len(fds))
		pfds := make([]unix.PollFd, 0, len(fds))
		for pid, fd := range fds {
			pids = append(pids, pid)
			pfds = append(pfds, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
		}
		// Wake at least every 100ms to notice ctx; exits wake us at once.
		ms := min(left.Milliseconds()+1, 100)
		n, err := unix.Poll(pfds, int(ms))
		if err != nil && err != unix.EINTR {
			return
		}
		if n <= 0 {
			continue
		}
		for i, p := range pfds {
			if p.Revents != 0 {
				unix.Close(fds[pids[i]])
				delete(fds, pids[i])
			}
		}
		reapChildren()
	}
}

// reapChildren collects every exited child (orphans re-parented to us
// become our zombies), without blocking.
func reapChildren() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}

// lockWatch tells when the lock file may have been deleted or replaced
// during the run: unlinking or renaming over it changes its link count
// (IN_ATTRIB), moving it is IN_MOVE_SELF. IN_DELETE_SELF would come only
// after our own descriptor is closed, too late to matter.
//
// Closing an inotify instance that had a watch waits for the kernel's SRCU
// grace period, 8-16 ms on a busy machine, which every short run would pay
// while it holds the lock. So the watch starts only once the run has lasted
// watchAfter (the check at the end of the run covers shorter ones) and is
// closed off the run's path.
type lockWatch struct {
	c    chan struct{}
	quit chan struct{}
	mu   sync.Mutex
	f    *os.File
	done bool
}

const watchAfter = time.Second

func watchLockFile(h *lock.Holder) *lockWatch {
	w := &lockWatch{c: make(chan struct{}, 1), quit: make(chan struct{})}
	go func() {
		select {
		case <-time.After(watchAfter):
		case <-w.quit:
			return
		}
		fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
		if err != nil {
			return
		}
		if _, err := unix.InotifyAddWatch(fd, h.Path(), unix.IN_ATTRIB|unix.IN_MOVE_SELF); err != nil {
			unix.Close(fd)
			return
		}
		// A non-blocking inotify descriptor is pollable, so a read through
		// *os.File parks in the runtime's poller and Close wakes it.
		f := os.NewFile(uintptr(fd), "inotify")
		w.mu.Lock()
		if w.done {
			w.mu.Unlock()
			f.Close()
			return
		}
		w.f = f
		w.mu.Unlock()
		// The file may have gone before the watch was set.
		if still, err := h.StillHeld(); err == nil && !still {
			w.c <- struct{}{}
			return
		}
		buf := make([]byte, 4096)
		for {
			if _, err := f.Read(buf); err != nil {
				return
			}
			if still, err := h.StillHeld(); err == nil && !still {
				w.c <- struct{}{}
				return
			}
		}
	}()
	return w
}

func (w *lockWatch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return
	}
	w.done = true
	close(w.quit)
	if w.f != nil {
		go w.f.Close()
	}
}

// otherHolders returns the processes besides us whose descriptor holds the
// lock at path: after a run, only leftovers that escaped being ended.
func otherHolders(path string) []int {
	pids, err := lock.Holders(path)
	if err != nil {
		return nil
	}
	me := os.Getpid()
	var out []int
	for _, pid := range pids {
		if pid != me {
			out = append(out, pid)
		}
	}
	return out
}
