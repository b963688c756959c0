// Package hook owns the Stop-hook entry of runnerlock: reading and
// validating the hook's JSON event, deciding whether a run starts or is
// skipped (the lock is busy, the session is already done, the hook fired
// inside a run), and detaching the run. The hook takes the lock, starts a
// supervisor in a session of its own, hands it the locked descriptor and
// the input, and returns as soon as the supervisor says that the command
// has started, while the run goes on for minutes. The supervisor's side of
// that hand-off is here too (Supervise).
//
// It does not parse command lines or choose exit statuses: the command
// line fills a Config and maps the errors. Supervising the run itself
// (signals, timeout, ending what the command left behind, reclaiming from
// a dead supervisor) is lock/supervise's, the same as for `runnerlock run`.
package hook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/buildbench/runnerlock/lock"
	"github.com/buildbench/runnerlock/lock/supervise"
)

// Defaults of the hook's flags.
const (
	// DefaultTimeout bounds a detached run: nobody waits at its terminal,
	// and an alive but stuck holder is as bad as a dead one.
	DefaultTimeout = 30 * time.Minute
	// DefaultStuckAfter is when a busy skip becomes a warning that the
	// person at the agent sees.
	DefaultStuckAfter = 30 * time.Minute
	// ConfirmTimeout bounds the wait for the supervisor to say that it has
	// started. It takes milliseconds; the bound is for a machine in trouble.
	ConfirmTimeout = 10 * time.Second
)

// ErrNotHandedOff reports a supervisor started by hand rather than by a
// hook: the descriptors of the hand-off are missing.
var ErrNotHandedOff = errors.New("the detached supervisor is started by 'runnerlock hook' " +
	"itself, with the descriptors of the hand-off")

// Skip reasons, as the skip event names them.
const (
	ReasonBusy   = "runner-busy"
	ReasonDone   = "already-done"
	ReasonNested = "nested"
)

// Mode says what the hook handed to the supervisor.
type Mode string

const (
	// Held: the hook took the lock and handed over the locked descriptor.
	Held Mode = "held"
	// Reclaim: the lock is held by the leftovers of a supervisor that
	// died; ending them takes seconds, so the supervisor takes the lock.
	Reclaim Mode = "reclaim"
)

// Config is one firing of the hook, or one detached supervisor, as the
// command line sets it up.
type Config struct {
	Lock       string
	Args       []string      // CMD and its arguments
	Timeout    time.Duration // the run's budget; see DefaultTimeout
	Grace      time.Duration // TERM to KILL; 0: supervise.DefaultGrace
	StuckAfter time.Duration // 0: a busy skip is never a warning
	Once       bool          // skip a session whose run ended with done

	// StateDir holds the done marks of --once; "" when there is none, and
	// --once then never skips.
	StateDir string

	Log        supervise.Logger // the event log
	SkippedLog supervise.Logger // also gets every skip; may be nil
	RunnerLog  string           // CMD's stdout and stderr; "": discarded

	Input ReadOptions

	// SupervisorArgs returns the arguments, after the program's name, that
	// start this program as the detached supervisor of mode.
	SupervisorArgs func(mode Mode) []string

	Stdin  io.Reader // the hook's input
	Stdout io.Writer // the agent reads a systemMessage here, and nothing else
	Stderr io.Writer // warnings
}

// Outcome is what a firing of the hook did.
type Outcome struct {
	Skipped    string // the skip reason; "" when a supervisor was started
	Stuck      bool   // the busy holder has held the lock longer than StuckAfter
	Mode       Mode   // what the supervisor was handed
	Supervisor int    // the supervisor's pid
	Run        string // the run's id, once the supervisor started it
}

// SupervisorError reports a detached supervisor that gave up before it
// started the command, as it told the hook, or that never told.
type SupervisorError struct {
	Msg      string
	Status   int  // 126 or 127 when the command could not be started, else 0
	Unusable bool // the lock path could not be used
}

func (e *SupervisorError) Error() string { return e.Msg }

// Fire handles one Stop event: it reads the input from cfg.Stdin, and
// either starts a detached run of cfg.Args or skips it, and returns within
// milliseconds either way. A skip is not an error. The errors are an
// *InputError (nothing was started), a *lock.UnusableError, a
// *SupervisorError, or another error; each has been logged.
func Fire(ctx context.Context, cfg *Config) (Outcome, error) {
	in, err := ReadInput(cfg.Stdin, cfg.Input)
	if err != nil {
		cfg.Log.Error("error", "reason", "bad-hook-input", "message", err.Error())
		return Outcome{}, err
	}
	session := in.SessionID

	if run, ok := nestedRun(cfg.Lock); ok {
		cfg.skip(false, "session", session, "reason", ReasonNested, "holder_run", run)
		return Outcome{Skipped: ReasonNested}, nil
	}

	h, err := lock.Acquire(ctx, cfg.Lock, lock.Options{})
	if errors.Is(err, lock.ErrBusy) {
		return cfg.busy(in, err)
	}
	if err != nil {
		cfg.Log.Error("error", "session", session, "reason", "lock-unusable",
			"message", err.Error())
		return Outcome{}, err
	}
	defer h.Release()
	cfg.logMigration(session, h)

	if cfg.Once && cfg.done(session) {
		cfg.skip(false, "session", session, "reason", ReasonDone)
		return Outcome{Skipped: ReasonDone}, nil
	}
	return cfg.detach(in, h)
}

// busy decides about a lock that Acquire found held: the leftovers of a
// dead supervisor are the detached supervisor's to reclaim; a live holder
// means a skip, and a warning when it has held too long.
func (cfg *Config) busy(in *Input, err error) (Outcome, error) {
	var legacy *lock.LegacyBusyError
	rec, rerr := lock.ReadRecord(cfg.Lock)
	if !errors.As(err, &legacy) && rerr == nil && rec.Orphaned() {
		// Ending them takes up to --grace and more, which the agent must
		// not wait for.
		out, err := cfg.detach(in, nil)
		// Leftovers that cannot be tied to their run are never reclaimed,
		// and every hook would start a reclaim that ends nothing: once the
		// dead run has held the lock past --stuck-after, say so to the
		// person at the agent, as for a live holder.
		if held := time.Since(rec.Since); cfg.StuckAfter > 0 && !rec.Since.IsZero() &&
			held > cfg.StuckAfter {
			out.Stuck = true
			cfg.printSystemMessage(OrphanStuckMessage(cfg.Lock, rec, held))
		}
		return out, err
	}

	be := &supervise.BusyError{Err: err}
	if rerr == nil {
		be.Holder, be.HasRecord = rec, true
	}
	out := Outcome{Skipped: ReasonBusy}
	if msg := cfg.logBusy(in.SessionID, be); msg != "" {
		out.Stuck = true
		cfg.printSystemMessage(msg)
	}
	return out, nil
}

// printSystemMessage writes the one JSON object an agent shows its user.
func (cfg *Config) printSystemMessage(msg string) {
	b, _ := json.Marshal(struct {
		SystemMessage string `json:"systemMessage"`
	}{msg})
	fmt.Fprintf(cfg.Stdout, "%s\n", b)
}

// OrphanStuckMessage is the systemMessage for a lock that the leftovers of
// a dead supervisor have held too long.
func OrphanStuckMessage(path string, rec lock.Record, held time.Duration) string {
	return fmt.Sprintf("runnerlock: the runner looks stuck: run %s (session %q) lost its "+
		"supervisor (pid %d) but processes of it have held %s for %s, since %s; a reclaim "+
		"was started. If this repeats, see 'runnerlock status --lock %s' for the holders "+
		"and end them", rec.Run, rec.Session, rec.PID, path, held.Round(time.Second),
		rec.Since.UTC().Format(time.RFC3339), path)
}

// logBusy writes the skip of a busy lock, with what is known of the
// holder. When the holder has held the lock longer than StuckAfter the
// skip is a warning with stuck=true, and logBusy returns the message for
// the person at the agent; otherwise "".
func (cfg *Config) logBusy(session string, be *supervise.BusyError) (stuckMsg string) {
	kv := []any{"session", session, "reason", ReasonBusy}
	var legacy *lock.LegacyBusyError
	var held time.Duration
	switch {
	case errors.As(be, &legacy):
		kv = append(kv, "holder", "legacy", "holder_pid", legacy.PID)
		if held = legacy.Age; held > 0 {
			kv = append(kv, "held", held.Round(time.Second))
		}
	case be.HasRecord && be.Holder.State == lock.StateRunning && !be.Holder.Since.IsZero():
		h := be.Holder
		held = time.Since(h.Since)
		kv = append(kv, "holder_pid", h.PID, "holder_session", h.Session, "holder_run", h.Run,
			"held", held.Round(time.Second))
	case be.HasRecord && be.Holder.State == lock.StateRunning:
		h := be.Holder
		kv = append(kv, "holder_pid", h.PID, "holder_session", h.Session, "holder_run", h.Run)
	}
	stuck := cfg.StuckAfter > 0 && held > cfg.StuckAfter
	if !stuck {
		cfg.skip(false, kv...)
		return ""
	}
	cfg.skip(true, append(kv, "stuck", true)...)
	if legacy != nil {
		return legacyStuckMessage(cfg.Lock, legacy.PID, held)
	}
	return StuckMessage(cfg.Lock, be.Holder, held)
}

// StuckMessage is the systemMessage that tells the person at the agent who
// holds the lock, since when, and what to do about it.
func StuckMessage(path string, rec lock.Record, held time.Duration) string {
	return fmt.Sprintf("runnerlock: the runner looks stuck: pid %d (session %q, run %s) has "+
		"held %s for %s, since %s; no new run starts until it ends. See 'runnerlock status "+
		"--lock %s'; to end the run: kill -TERM %d", rec.PID, rec.Session, rec.Run, path,
		held.Round(time.Second), rec.Since.UTC().Format(time.RFC3339), path, rec.PID)
}

func legacyStuckMessage(path string, pid int, held time.Duration) string {
	who := "a legacy hook with no pid file"
	if pid > 0 {
		who = fmt.Sprintf("the legacy hook pid %d", pid)
	}
	return fmt.Sprintf("runnerlock: the runner looks stuck: %s has held the mkdir lock %s "+
		"for %s, since %s; no new run starts until it ends. See 'runnerlock status --lock %s'",
		who, path, held.Round(time.Second), time.Now().Add(-held).UTC().Format(time.RFC3339),
		path)
}

// logMigration writes the migrate event of a lock taken by migrating a
// legacy lock directory.
func (cfg *Config) logMigration(session string, h *lock.Holder) {
	m := h.Migrated
	if m == nil {
		return
	}
	kv := []any{"session", session, "path", h.Path(), "old_pid", m.OldPID, "reason", m.Reason}
	if m.Leftover != "" {
		kv = append(kv, "leftover", m.Leftover)
	}
	cfg.Log.Event("migrate", kv...)
}

// skip writes a skip event to the event log and to the skipped log.
func (cfg *Config) skip(warn bool, kv ...any) {
	for _, l := range []supervise.Logger{cfg.Log, cfg.SkippedLog} {
		switch {
		case l == nil:
		case warn:
			l.Warn("skip", kv...)
		default:
			l.Event("skip", kv...)
		}
	}
}

// done reports whether session has a done mark. When the marks cannot be
// read it warns and says no: drafting twice is better than never.
func (cfg *Config) done(session string) bool {
	if cfg.StateDir == "" {
		cfg.warnf("--once: no state directory for the done marks; the run goes ahead")
		return false
	}
	done, err := NewMarks(cfg.StateDir).Done(session, time.Now())
	if err != nil {
		cfg.warnf("--once: cannot read the done mark: %v; the run goes ahead", err)
		return false
	}
	return done
}

// markDone writes session's done mark; it must be called under the lock.
func (cfg *Config) markDone(session string) {
	if cfg.StateDir == "" {
		cfg.warnf("--once: no state directory; the done mark is not written")
		return
	}
	if err := NewMarks(cfg.StateDir).Mark(session, time.Now()); err != nil {
		cfg.Log.Warn("error", "session", session, "reason", "mark-failed",
			"message", err.Error())
	}
}

func (cfg *Config) warnf(format string, a ...any) {
	if cfg.Stderr != nil {
		fmt.Fprintf(cfg.Stderr, "runnerlock: warning: "+format+"\n", a...)
	}
}

// nestedRun reports whether the run named by RUNNERLOCK_RUN in our
// environment holds the lock at path now: the holder record names it and
// its supervisor is alive among the holders, or a process whose descriptor
// holds the lock carries it (the run's command, or what it left behind).
// A stale RUNNERLOCK_RUN, left in some shell's environment, names no run
// that holds the lock, and must not silence the hook.
func nestedRun(path string) (string, bool) {
	run := os.Getenv("RUNNERLOCK_RUN")
	if run == "" {
		return "", false
	}
	st, err := lock.Describe(path)
	if err != nil || st.State != lock.Held {
		return "", false
	}
	if st.Record != nil && st.Record.Run == run && st.Supervisor > 0 {
		return run, true
	}
	for _, pid := range st.Holders {
		if lock.RunOf(pid) == run {
			return run, true
		}
	}
	return "", false
}
