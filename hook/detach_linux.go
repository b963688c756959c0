package hook

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/buildbench/runnerlock/lock"
	"github.com/buildbench/runnerlock/lock/supervise"
)

// The hand-off. The hook starts the supervisor as a new program (this
// binary again, /proc/self/exe, so that hook and supervisor always speak
// the same version of it) in a session of its own: an agent that kills the
// hook's process group on its timeout does not reach the run. Its stdin is
// /dev/null and its stdout and stderr are the runner log, so no standard
// stream of the agent's stays open. Parameters travel as the supervisor's
// arguments and environment; descriptors go at fixed numbers, and nothing
// else the hook inherited reaches it (supervise.Prepare marked all of that
// close-on-exec):
//
//	3  the hook's input, byte for byte, in a sealed memfd: CMD's stdin
//	4  the write end of the confirmation pipe
//	5  the locked descriptor (Held only): the same open file description
//	   as the hook's, so the lock is never free between hook and run
//
// The supervisor writes one JSON line on the confirmation pipe and closes
// it: "started" once the command runs under the lock (Held), "accepted" as
// soon as it is up (Reclaim: ending the leftovers may take seconds), or
// "failed" with the reason. The hook returns when it has read that line.
const (
	fdInput   = 3
	fdConfirm = 4
	fdLock    = 5
)

// Confirmation states.
const (
	confirmStarted  = "started"
	confirmAccepted = "accepted"
	confirmFailed   = "failed"
)

// confirmation is the one line a supervisor writes to its hook.
type confirmation struct {
	State    string `json:"state"`
	PID      int    `json:"pid,omitempty"` // the supervisor
	Run      string `json:"run,omitempty"`
	Message  string `json:"message,omitempty"`
	Status   int    `json:"status,omitempty"` // 126 or 127: the command could not start
	Unusable bool   `json:"unusable,omitempty"`
}

// detach starts the supervisor, hands it h (nil for Reclaim), and waits for
// its confirmation. h stays held by the hook until then; the caller
// releases its copy after.
func (cfg *Config) detach(in *Input, h *lock.Holder) (Outcome, error) {
	mode := Reclaim
	if h != nil {
		mode = Held
	}
	out := Outcome{Mode: mode}
	cmd, confirm, err := cfg.startSupervisor(in, h, mode)
	if err != nil {
		cfg.Log.Error("error", "session", in.SessionID, "reason", "detach-failed",
			"message", err.Error())
		return out, err
	}
	defer confirm.Close()
	out.Supervisor = cmd.Process.Pid

	c, err := readConfirmation(cmd, confirm, ConfirmTimeout, cfg.RunnerLog)
	if err != nil {
		cfg.Log.Error("error", "session", in.SessionID, "reason", "detach-failed",
			"supervisor", out.Supervisor, "message", err.Error())
		return out, &SupervisorError{Msg: err.Error()}
	}
	switch c.State {
	case confirmStarted, confirmAccepted:
		out.Run = c.Run
		return out, nil
	case confirmFailed:
		// The supervisor has logged it.
		return out, &SupervisorError{Msg: c.Message, Status: c.Status, Unusable: c.Unusable}
	}
	return out, &SupervisorError{Msg: fmt.Sprintf("the detached supervisor (pid %d) said %q",
		out.Supervisor, c.State)}
}

func (cfg *Config) startSupervisor(in *Input, h *lock.Holder, mode Mode) (*exec.Cmd,
	*os.File, error) {
	input, err := inputFile(in.Raw)
	if err != nil {
		return nil, nil, err
	}
	defer input.Close()
	confirmR, confirmW, err := os.Pipe()
	if err != nil {
		return nil, nil, err
	}
	defer confirmW.Close()
	files := []*os.File{input, confirmW}
	if h != nil {
		fd, err := unix.FcntlInt(uintptr(h.Fd()), unix.F_DUPFD_CLOEXEC, 3)
		if err != nil {
			confirmR.Close()
			return nil, nil, fmt.Errorf("cannot hand over the lock: %w", err)
		}
		lockFile := os.NewFile(uintptr(fd), h.Path())
		defer lockFile.Close()
		files = append(files, lockFile)
	}

	exe, argv0 := selfExe()
	cmd := &exec.Cmd{
		Path:        exe,
		Args:        append([]string{argv0}, cfg.SupervisorArgs(mode)...),
		Env:         supervisorEnv(os.Environ()),
		ExtraFiles:  files,
		SysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	// A nil Stdin, Stdout or Stderr is /dev/null.
	if out := cfg.openRunnerLog(); out != nil {
		defer out.Close()
		cmd.Stdout, cmd.Stderr = out, out
	}
	if err := cmd.Start(); err != nil {
		confirmR.Close()
		return nil, nil, fmt.Errorf("cannot start the detached supervisor: %w", err)
	}
	return cmd, confirmR, nil
}

// supervisorEnv is the hook's environment without the variables that tie
// a process to a run. A hook fired inside a run that has since ended (its
// RUNNERLOCK_RUN is stale) must not hand that id to a supervisor that holds
// the lock: whoever reclaims the dead run ends the holders that carry its
// id, and would take the new supervisor for one of its leftovers.
func supervisorEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, kv := range env {
		if !strings.HasPrefix(kv, "RUNNERLOCK_RUN=") && !strings.HasPrefix(kv, "RUNNERLOCK_FENCE=") {
			out = append(out, kv)
		}
	}
	return out
}

// selfExe returns the program to start as the supervisor and the name to
// show for it. /proc/self/exe is this very binary even when an upgrade has
// replaced the file at its path meanwhile.
func selfExe() (path, argv0 string) {
	argv0, err := os.Executable()
	if err != nil {
		argv0 = os.Args[0]
	}
	if _, err := os.Stat("/proc/self/exe"); err == nil {
		return "/proc/self/exe", argv0
	}
	return argv0, argv0
}

// openRunnerLog opens the runner log for appending. A log that cannot be
// opened costs one warning, never the run: its output is discarded.
func (cfg *Config) openRunnerLog() *os.File {
	if cfg.RunnerLog == "" {
		return nil
	}
	f, err := os.OpenFile(cfg.RunnerLog,
		os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		cfg.warnf("cannot open runner log %s: %v; the run's output is discarded",
			cfg.RunnerLog, unwrapPath(err))
		return nil
	}
	return f
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// inputFile returns a file that reads raw and then ends, for CMD's stdin: a
// memfd, sealed so that nobody can change it, or else an unlinked
// temporary file. Unlike a pipe it needs no writer, and a command that
// never reads it blocks nobody.
func inputFile(raw []byte) (*os.File, error) {
	var f *os.File
	fd, err := unix.MemfdCreate("runnerlock-hook-input", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err == nil {
		f = os.NewFile(uintptr(fd), "hook input")
	} else {
		f, err = os.CreateTemp("", "runnerlock-input-*")
		if err != nil {
			return nil, fmt.Errorf("cannot keep the hook input for the run: %w", err)
		}
		_ = os.Remove(f.Name())
	}
	if _, err := f.Write(raw); err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot keep the hook input for the run: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot keep the hook input for the run: %w", err)
	}
	// Sealing fails on a temporary file, which is fine: it only guards
	// against a run that writes to its own stdin.
	_, _ = unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS,
		unix.F_SEAL_SEAL|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE)
	return f, nil
}

// readConfirmation reads the supervisor's one line. When the supervisor
// says nothing in time it is killed, with whatever it had started (the
// command dies with it, by its parent-death signal), so that a run the
// hook reports as failed is not running.
func readConfirmation(cmd *exec.Cmd, r *os.File, timeout time.Duration,
	runnerLog string) (confirmation, error) {
	var c confirmation
	pid := cmd.Process.Pid
	_ = r.SetReadDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(io.LimitReader(r, 64<<10)).ReadBytes('\n')
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		_ = cmd.Process.Kill()
		return c, fmt.Errorf("the detached supervisor (pid %d) did not confirm within %s, "+
			"and was killed", pid, timeout)
	case err != nil && len(line) == 0:
		where := ""
		if runnerLog != "" {
			where = "; see " + runnerLog
		}
		return c, fmt.Errorf("the detached supervisor (pid %d) ended before it started "+
			"the run (%s)%s", pid, exitText(cmd), where)
	}
	if err := json.Unmarshal(line, &c); err != nil {
		return c, fmt.Errorf("the detached supervisor (pid %d) sent %q", pid, line)
	}
	return c, nil
}

// exitText says how the supervisor ended, if it ends within a moment.
func exitText(cmd *exec.Cmd) string {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			return "exit status 0"
		}
		return err.Error()
	case <-time.After(500 * time.Millisecond):
		return "still running"
	}
}

// confirmer writes the supervisor's one confirmation, once.
type confirmer struct {
	f *os.File
}

func (c *confirmer) send(m confirmation) {
	if c.f == nil {
		return
	}
	m.PID = os.Getpid()
	b, _ := json.Marshal(m)
	// The hook may be gone (killed on the agent's timeout): EPIPE is fine.
	_, _ = c.f.Write(append(b, '\n'))
	c.close()
}

func (c *confirmer) fail(err error) {
	m := confirmation{State: confirmFailed, Message: err.Error()}
	var se *supervise.StartError
	var ue *lock.UnusableError
	switch {
	case errors.As(err, &se):
		m.Status = se.Status
	case errors.As(err, &ue):
		m.Unusable = true
	}
	c.send(m)
}

func (c *confirmer) close() {
	if c.f != nil {
		c.f.Close()
		c.f = nil
	}
}

// handedOff checks that the descriptors of the hand-off are there and of
// the right kinds, and returns the input and the confirmation pipe.
func handedOff(mode Mode) (input *os.File, c *confirmer, err error) {
	kind := func(fd int) uint32 {
		var st unix.Stat_t
		if unix.Fstat(fd, &st) != nil {
			return 0
		}
		return st.Mode & unix.S_IFMT
	}
	if kind(fdInput) != unix.S_IFREG || kind(fdConfirm) != unix.S_IFIFO ||
		(mode == Held && kind(fdLock) != unix.S_IFREG) {
		return nil, nil, ErrNotHandedOff
	}
	return os.NewFile(fdInput, "hook input"), &confirmer{f: os.NewFile(fdConfirm, "confirm")}, nil
}

// Supervise is the detached supervisor: it takes over what the hook
// handed it and runs cfg.Args under the lock with the full supervision of
// supervise.Run. CMD reads the hook's input on stdin, byte for byte; its
// stdout and stderr are the supervisor's own, the runner log.
//
// Held: it adopts the locked descriptor, so the lock was never free since
// the hook took it. Reclaim: it takes the lock itself, ending the
// leftovers of the dead supervisor that hold it (supervise.Take), or logs
// a skip if another run took it first; with --once it checks the session's
// done mark once it holds the lock. In both modes, with --once, the done
// mark is written after a run that ended with done, before the lock is
// released.
func Supervise(ctx context.Context, cfg *Config, mode Mode) (supervise.Result, error) {
	input, conf, err := handedOff(mode)
	if err != nil {
		return supervise.Result{}, err
	}
	defer conf.close()
	defer input.Close()

	in, err := ReadInput(input, ReadOptions{})
	if err == nil {
		_, err = input.Seek(0, io.SeekStart)
	}
	if err != nil {
		cfg.Log.Error("error", "reason", "bad-hook-input", "message", err.Error())
		conf.fail(err)
		return supervise.Result{}, err
	}
	session := in.SessionID
	job := &supervise.Job{
		Lock:    cfg.Lock,
		Session: session,
		Args:    cfg.Args,
		Stdin:   input,
		Timeout: cfg.Timeout,
		Grace:   cfg.Grace,
		Log:     cfg.Log,
		Ready: func(rec lock.Record) {
			conf.send(confirmation{State: confirmStarted, Run: rec.Run})
		},
	}

	var h *lock.Holder
	var orphan *supervise.Reclaimed
	switch mode {
	case Held:
		h, err = lock.Adopt(cfg.Lock, fdLock)
		if err != nil {
			unix.Close(fdLock)
			cfg.Log.Error("error", "session", session, "reason", "lock-unusable",
				"message", err.Error())
			conf.fail(err)
			return supervise.Result{}, err
		}
		// As supervise.Take does: a record left running names a run that
		// ended without its terminal event.
		if prev, perr := h.Previous(); perr == nil && prev.State == lock.StateRunning {
			orphan = &supervise.Reclaimed{Record: prev}
		}
	case Reclaim:
		conf.send(confirmation{State: confirmAccepted})
		var busy *supervise.BusyError
		h, orphan, err = supervise.Take(ctx, job)
		if errors.As(err, &busy) {
			cfg.logBusy(session, busy)
			return supervise.Result{}, nil
		}
		if err != nil {
			cfg.Log.Error("error", "session", session, "reason", "lock-unusable",
				"message", err.Error())
			return supervise.Result{}, err
		}
		cfg.logMigration(session, h)
		if cfg.Once && cfg.done(session) {
			h.Release()
			cfg.skip(false, "session", session, "reason", ReasonDone)
			return supervise.Result{}, nil
		}
	default:
		return supervise.Result{}, fmt.Errorf("unknown hand-off mode %q", mode)
	}

	// Run releases the lock as soon as the run is over, but the done mark
	// must be written while it is still held, or a hook of the same session
	// could slip in between: a second copy of the descriptor keeps the lock
	// until then.
	keep := -1
	if cfg.Once {
		keep, _ = unix.FcntlInt(uintptr(h.Fd()), unix.F_DUPFD_CLOEXEC, 3)
	}
	res, err := supervise.Run(ctx, h, orphan, job)
	if err == nil && cfg.Once && res.Outcome == supervise.Done {
		cfg.markDone(session)
	}
	if keep >= 0 {
		unix.Close(keep)
	}
	if err != nil {
		if !errors.As(err, new(*supervise.StartError)) {
			// Run logs a command that cannot start, and nothing else.
			cfg.Log.Error("error", "session", session, "reason", "run-failed",
				"message", err.Error())
		}
		conf.fail(err)
		return res, err
	}
	return res, nil
}
