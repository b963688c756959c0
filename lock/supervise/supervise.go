// Package supervise owns a run under the lock, for `run` and for the
// detached supervisor of `hook` alike: taking the lock (and reclaiming it
// from the leftovers of a supervisor that died), starting the command with
// the locked descriptor, passing signals on, enforcing the timeout, ending
// what the command left behind, and writing the run's events and holder
// record in an order a reader can trust.
//
// It does not know log formats or command lines: events go to a Logger,
// and Run returns the facts from which the caller picks its exit status.
package supervise

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/buildbench/runnerlock/lock"
)

// Logger receives the run's events, one call per event, with alternating
// keys and values. The log package's Logger satisfies it.
type Logger interface {
	Event(name string, kv ...any)
	Warn(name string, kv ...any)
	Error(name string, kv ...any)
}

// Outcomes, which are also the names of the terminal events.
const (
	Done      = "done"       // the command exited 0
	PostError = "post_error" // the command exited non-zero
	Killed    = "killed"     // the command died of a signal
	Timeout   = "timeout"    // --timeout ended it
)

// Exit statuses that Run gives, besides the command's own.
const (
	ExitTimeout       = 124
	ExitNotExecutable = 126
	ExitNotFound      = 127
)

// DefaultGrace is the time between TERM and KILL.
const DefaultGrace = 10 * time.Second

// Job is one run: what to run and how.
type Job struct {
	Lock    string   // lock path
	Session string   // recorded in the record and every event
	Args    []string // the command and its arguments
	Env     []string // the command's environment before RUNNERLOCK_*; nil: ours

	// The command's standard streams; nil means the supervisor's own.
	Stdin, Stdout, Stderr *os.File

	Timeout time.Duration // 0: none
	Grace   time.Duration // TERM to KILL; 0: DefaultGrace

	// Wait for the lock up to WaitFor (0: forever) instead of giving up.
	Wait    bool
	WaitFor time.Duration

	// LegacyMaxAge: a legacy lock directory without a usable pid file is
	// stale once older; 0 means lock.DefaultLegacyMaxAge.
	LegacyMaxAge time.Duration

	Log Logger

	// Ready, when set, is called once the command has started under the
	// lock, with the running record. The hook uses it to let go.
	Ready func(lock.Record)

	// RunID is the run's id; Run chooses one with NewRunID when empty.
	RunID string

	onLockLost func() // set by Run: the lock file was deleted or replaced
}

// Result is what became of a run.
type Result struct {
	Record    lock.Record // the record as it ended
	Outcome   string      // Done, PostError, Killed or Timeout
	Status    int         // the exit status the supervisor should give
	ExitCode  int         // the command's exit code, when it exited
	Signal    syscall.Signal
	Duration  time.Duration
	Leftovers []int // processes ended after the command exited
	Survivors []int // processes that outlived KILL and may still hold the lock
}

// StartError reports a command that could not be started; Status is 126
// or 127 as a shell would give.
type StartError struct {
	Status int
	Err    error
}

func (e *StartError) Error() string { return e.Err.Error() }
func (e *StartError) Unwrap() error { return e.Err }

// BusyError reports a lock held by someone else, with what the holder
// record says of them when it could be read.
type BusyError struct {
	Holder    lock.Record // zero when unknown
	HasRecord bool
	Err       error // wraps lock.ErrBusy
}

func (e *BusyError) Error() string { return e.Err.Error() }
func (e *BusyError) Unwrap() error { return e.Err }

// NewRunID returns a fresh run id: 16 hex digits from the system's random
// source.
func NewRunID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Take acquires the lock for job. When the lock is held by the leftovers of
// a supervisor that is proven dead (its record says running, its pid and
// start time name no live process), Take ends those leftovers (only
// processes that hold the lock and carry the dead run's RUNNERLOCK_RUN, so a
// fresh holder that has not yet written its record is never touched) and
// takes the lock. A waiter does the same when the holder dies while it
// waits. Any record left running is returned as orphan, for a reclaim event.
func Take(ctx context.Context, job *Job) (h *lock.Holder, orphan *Reclaimed, err error) {
	grace := job.grace()
	var reclaimed []int
	watch := func(wctx context.Context) {
		reclaimed = append(reclaimed, watchHolder(wctx, job.Lock, grace)...)
	}

	if job.Wait {
		wctx := ctx
		if job.WaitFor > 0 {
			var cancel context.CancelFunc
			wctx, cancel = context.WithTimeout(ctx, job.WaitFor)
			defer cancel()
		}
		h, err = lock.Acquire(wctx, job.Lock, lock.Options{Wait: true, WhileBlocked: watch,
			LegacyMaxAge: job.LegacyMaxAge})
	} else {
		h, err = lock.Acquire(ctx, job.Lock, lock.Options{LegacyMaxAge: job.LegacyMaxAge})
		if errors.Is(err, lock.ErrBusy) {
			// Held: if by the leftovers of a dead run, end them and try once
			// more; a live holder keeps the lock.
			if rec, rerr := lock.ReadRecord(job.Lock); rerr == nil && rec.Orphaned() {
				ended, _ := EndLeftovers(job.Lock, rec, grace)
				reclaimed = append(reclaimed, ended...)
				h, err = lock.Acquire(ctx, job.Lock, lock.Options{LegacyMaxAge: job.LegacyMaxAge})
			}
		}
	}
	if err != nil {
		if errors.Is(err, lock.ErrBusy) {
			be := &BusyError{Err: err}
			if rec, rerr := lock.ReadRecord(job.Lock); rerr == nil {
				be.Holder, be.HasRecord = rec, true
			}
			return nil, nil, be
		}
		return nil, nil, err
	}

	prev, perr := h.Previous()
	if perr == nil && prev.State == lock.StateRunning {
		// We hold the lock, so whoever wrote this record is gone without
		// marking it released: its run ended without a terminal event.
		orphan = &Reclaimed{Record: prev, Ended: reclaimed}
	}
	return h, orphan, nil
}

// Reclaimed describes a run whose supervisor died holding the lock.
type Reclaimed struct {
	Record lock.Record
	Ended  []int // leftovers ended to free the lock
}

func (j *Job) grace() time.Duration {
	if j.Grace > 0 {
		return j.Grace
	}
	return DefaultGrace
}

// Run runs job's command under h, which must be held, and releases h when
// the command and what it left behind are gone.
//
// The order of the last writes is: the terminal event, then the record's
// state released, then the release. A supervisor killed between the first
// two leaves a terminal event and a running record; the next holder logs
// reclaim for that run, and a reader that finds both takes the terminal
// event: the run did end, its supervisor died before it could say so in the
// record. A supervisor killed before the terminal event leaves only the
// reclaim.
func Run(ctx context.Context, h *lock.Holder, orphan *Reclaimed, job *Job) (Result, error) {
	defer h.Release()
	runID := job.RunID
	if runID == "" {
		runID = NewRunID()
	}

	prev, perr := h.Previous()
	var prevFence int64
	if perr == nil {
		prevFence = prev.Fence
	}
	now := time.Now().UTC()
	fence, err := lock.NextFence(prevFence, now)
	if err != nil {
		return Result{}, &lock.UnusableError{Path: h.Path(), Reason: err.Error(),
			Hint: "remove the lock file while it is free to start the fence afresh"}
	}
	rec := lock.NewRecord(runID, job.Session, job.Args)
	rec.Since, rec.Fence = now, fence

	log := withRun(job.Log, runID, job.Session)
	if m := h.Migrated; m != nil {
		kv := []any{"path", h.Path(), "old_pid", m.OldPID, "reason", m.Reason}
		if m.Leftover != "" {
			kv = append(kv, "leftover", m.Leftover)
		}
		log.Event("migrate", kv...)
	}
	if orphan != nil {
		orphan.Ended = append(orphan.Ended, endStrays(orphan.Record.Run, job.grace())...)
		reportReclaim(log, orphan)
	}
	if err := h.WriteRecord(rec); err != nil {
		return Result{}, err
	}

	lost := false
	job.onLockLost = func() {
		lost = true
		reportLost(log)
	}
	env := append(commandEnv(job.Env),
		"RUNNERLOCK_RUN="+runID,
		"RUNNERLOCK_SESSION="+job.Session,
		"RUNNERLOCK_FENCE="+strconv.FormatInt(fence, 10),
		"RUNNERLOCK_LOCK="+h.Path(),
	)
	res, err := runCommand(ctx, h, job, env, func(pid int) {
		log.Event("start", "pid", os.Getpid(), "cmd_pid", pid, "fence", fence,
			"command", clip(strings.Join(job.Args, " "), maxCommandText))
		if job.Ready != nil {
			job.Ready(rec)
		}
	})
	if err != nil {
		log.Error("error", "reason", "start-failed", "message", err.Error())
		rec.State = lock.StateReleased
		_ = h.WriteRecord(rec)
		return Result{Record: rec}, err
	}
	res.Record = rec
	if len(res.Leftovers) > 0 && len(res.Survivors) == 0 {
		// Something was left behind: make sure none of it still shares our
		// lock before we say that the run released it.
		res.Survivors = otherHolders(h.Path())
	}

	kv := []any{"status", res.Status, "duration", res.Duration.Round(time.Millisecond)}
	if len(res.Leftovers) > 0 {
		kv = append(kv, "leftovers", res.Leftovers)
	}
	if len(res.Survivors) > 0 {
		kv = append(kv, "survivors", res.Survivors)
	}
	switch res.Outcome {
	case Done:
		log.Event(Done, kv...)
	case PostError:
		log.Event(PostError, append(kv, "exit", res.ExitCode)...)
	case Killed:
		log.Warn(Killed, append(kv, "signal", signalName(res.Signal))...)
	case Timeout:
		log.Warn(Timeout, append(kv, "timeout", job.Timeout)...)
	}
	if len(res.Survivors) > 0 {
		// The record stays running: once we are gone, the next holder
		// finds a dead supervisor and reclaims from these.
		log.Error("error", "reason", "survived-kill", "pids", res.Survivors,
			"message", "processes of the run survived KILL and may hold the lock; "+
				"the next run reclaims it from them")
		return res, nil
	}

	if still, serr := h.StillHeld(); serr == nil && !still && !lost {
		reportLost(log)
	}

	rec.State = lock.StateReleased
	res.Record = rec
	if err := h.WriteRecord(rec); err != nil {
		log.Warn("error", "reason", "record-write-failed", "message", err.Error())
	}
	return res, nil
}

func reportLost(log Logger) {
	log.Error("error", "reason", "lock-file-replaced",
		"message", "the lock file was deleted or replaced during the run; "+
			"a run started on the new file would not be excluded by this one")
}

func reportReclaim(log Logger, o *Reclaimed) {
	r := o.Record
	kv := []any{"dead_run", r.Run, "dead_pid", r.PID, "dead_session", r.Session,
		"dead_since", r.Since, "dead_fence", r.Fence}
	if !r.Since.IsZero() {
		kv = append(kv, "held", time.Since(r.Since).Round(time.Second))
	}
	if len(o.Ended) > 0 {
		kv = append(kv, "ended", o.Ended)
	}
	log.Warn("reclaim", kv...)
}

func commandEnv(env []string) []string {
	if env == nil {
		env = os.Environ()
	}
	out := make([]string, 0, len(env)+4)
	for _, kv := range env {
		if hasAnyPrefix(kv, "RUNNERLOCK_RUN=", "RUNNERLOCK_SESSION=", "RUNNERLOCK_FENCE=",
			"RUNNERLOCK_LOCK=") {
			continue
		}
		out = append(out, kv)
	}
	return out
}

func hasAnyPrefix(s string, prefixes ...string) bool {
	for _, p := range prefixes {
		if len(s) >= len(p) && s[:len(p)] == p {
			return true
		}
	}
	return false
}

// withRun returns a Logger whose events carry run and session first.
func withRun(l Logger, run, session string) Logger {
	return runLogger{l: l, kv: []any{"run", run, "session", session}}
}

type runLogger struct {
	l  Logger
	kv []any
}

func (r runLogger) Event(n string, kv ...any) { r.l.Event(n, r.join(kv)...) }
func (r runLogger) Warn(n string, kv ...any)  { r.l.Warn(n, r.join(kv)...) }
func (r runLogger) Error(n string, kv ...any) { r.l.Error(n, r.join(kv)...) }
func (r runLogger) join(kv []any) []any {
	return append(append(make([]any, 0, len(r.kv)+len(kv)), r.kv...), kv...)
}

func signalName(s syscall.Signal) string {
	if n := sigNames[s]; n != "" {
		return n
	}
	return fmt.Sprintf("signal %d", int(s))
}

var sigNames = map[syscall.Signal]string{
	syscall.SIGHUP: "SIGHUP", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT",
	syscall.SIGILL: "SIGILL", syscall.SIGABRT: "SIGABRT", syscall.SIGFPE: "SIGFPE",
	syscall.SIGKILL: "SIGKILL", syscall.SIGSEGV: "SIGSEGV", syscall.SIGPIPE: "SIGPIPE",
	syscall.SIGALRM: "SIGALRM", syscall.SIGTERM: "SIGTERM", syscall.SIGUSR1: "SIGUSR1",
	syscall.SIGUSR2: "SIGUSR2", syscall.SIGBUS: "SIGBUS",
}

// forwarded are the signals passed on to the command.
var forwarded = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT}

func orStd(f, std *os.File) *os.File {
	if f != nil {
		return f
	}
	return std
}

// maxCommandText bounds the command in the start event, as in the record:
// an event line must stay a line an operator can read.
const maxCommandText = 4 << 10

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
