//go:build !linux

package supervise

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"

	"github.com/buildbench/runnerlock/lock"
)

// Outside Linux there is no subreaper, no pidfd, no parent-death signal and
// no /proc: the command runs in its own process group with the lock as fd 3,
// signals are passed on, --timeout holds, and what is left in the group is
// sent TERM then KILL; orphans that left the group are not found, and a dead
// supervisor's leftovers are never reclaimed.

// Prepare does nothing outside Linux.
func Prepare() {}

// EndLeftovers finds nothing to end outside Linux (see above).
func EndLeftovers(string, lock.Record, time.Duration) (ended, survivors []int) {
	return nil, nil
}

func watchHolder(ctx context.Context, _ string, _ time.Duration) []int {
	<-ctx.Done()
	return nil
}

func runCommand(ctx context.Context, h *lock.Holder, job *Job, env []string,
	started func(pid int)) (Result, error) {
	path, err := exec.LookPath(job.Args[0])
	if err != nil {
		return Result{}, &StartError{Status: ExitNotFound, Err: err}
	}
	dup, err := syscall.Dup(h.Fd())
	if err != nil {
		return Result{}, err
	}
	lockFile := os.NewFile(uintptr(dup), h.Path()) // a copy: closing it keeps the lock
	defer lockFile.Close()
	cmd := &exec.Cmd{Path: path, Args: job.Args, Env: env,
		Stdin: orStd(job.Stdin, os.Stdin), Stdout: orStd(job.Stdout, os.Stdout),
		Stderr: orStd(job.Stderr, os.Stderr), ExtraFiles: []*os.File{lockFile},
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, forwarded...)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		status := ExitNotExecutable
		if errors.Is(err, os.ErrNotExist) {
			status = ExitNotFound
		}
		return Result{}, &StartError{Status: status, Err: err}
	}
	pgid := cmd.Process.Pid
	started(pgid)
	t0 := time.Now()
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()

	var timeoutC, killC <-chan time.Time
	if job.Timeout > 0 {
		timeoutC = time.After(job.Timeout)
	}
	timedOut := false
	for done := false; !done; {
		select {
		case <-exited:
			done = true
		case s := <-sigs:
			_ = syscall.Kill(-pgid, s.(syscall.Signal))
		case <-timeoutC:
			timedOut = true
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
			killC = time.After(job.grace())
		case <-killC:
			_ = syscall.Kill(-pgid, syscall.SIGKILL)
		case <-ctx.Done():
			_ = syscall.Kill(-pgid, syscall.SIGTERM)
		}
	}
	res := Result{Duration: time.Since(t0)}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ws.Signaled():
		res.Signal, res.Status, res.Outcome = ws.Signal(), 128+int(ws.Signal()), Killed
	default:
		res.ExitCode, res.Status, res.Outcome = ws.ExitStatus(), ws.ExitStatus(), Done
		if res.ExitCode != 0 {
			res.Outcome = PostError
		}
	}
	if timedOut {
		res.Outcome, res.Status = Timeout, ExitTimeout
	}
	if syscall.Kill(-pgid, syscall.SIGTERM) == nil {
		time.Sleep(job.grace())
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
	return res, nil
}

func otherHolders(string) []int { return nil }

func endStrays(string, time.Duration) []int { return nil }
