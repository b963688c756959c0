package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/buildbench/runnerlock/hook"
	"github.com/buildbench/runnerlock/lock"
	"github.com/buildbench/runnerlock/lock/supervise"
	evlog "github.com/buildbench/runnerlock/log"
)

const hookHelp = `The entry point for an agent's Stop hook. Reads the hook's JSON event on
standard input, takes the lock, starts CMD under it in a detached
supervisor, and returns as soon as CMD has started, while the run goes on.
The supervisor gives the run the supervision of 'runnerlock run' (--timeout,
--grace, ending what CMD leaves behind), and sits in a session of its own,
with none of the hook's standard streams, so the agent waits for nothing.

CMD reads the hook's JSON on its standard input, byte for byte, and gets
RUNNERLOCK_SESSION set to its session_id. Its standard output and error go
to the runner log. The input is read for at most 5s and 1 MiB; a complete
JSON object is enough, without waiting for the end of input.

A hook never waits for the lock. When it is busy, the hook logs
skip reason="runner-busy" and exits 0; when the holder has held it longer
than --stuck-after, the skip is a warning with stuck=true, and the hook
prints {"systemMessage": "..."} on standard output so that the person at
the agent sees who is stuck (standard output is otherwise always empty).
When the lock is held by the leftovers of a supervisor that died, the new
supervisor ends them and takes the lock; the hook does not wait for that.
A hook started inside a run (RUNNERLOCK_RUN names the run that holds the
lock) exits 0 with skip reason="nested". With --once, a session whose run
already ended with done is skipped with reason="already-done".

Files, by default in the state directory, $XDG_STATE_HOME/runnerlock (else
~/.local/state/runnerlock):
   events.log   the event log (--log, RUNNERLOCK_LOG)
   runner.log   CMD's standard output and error (--runner-log)
   done/        the done marks of --once, kept 30 days

Agent configuration (.claude/settings.json), through the hook script:
   {"hooks": {"Stop": [{"hooks": [{"type": "command",
       "command": "/path/to/runnerlock/scripts/stop-hook.sh"}]}]}}

Examples:
   runnerlock hook -- ./scripts/draft.sh < stop.json
   runnerlock hook --once --timeout 10m -- ./scripts/draft.sh

Exit statuses (never 2, which would keep the agent from stopping):
   0    the run started, or was skipped (busy, already done, nested)
   1    bad hook input: nothing was started
   126  CMD is not executable      127  CMD was not found
   64   usage error                73   the lock path cannot be used
   70   internal error (the supervisor could not be started)`

// handoffFlag starts the hook's detached supervisor; only the hook uses
// it. It is a hidden flag rather than a hidden command, because urfave/cli
// would take a subcommand's name even after "--": `hook -- supervise`
// would run the supervisor instead of a CMD called supervise.
const handoffFlag = "handoff"

func hookCommand() *cli.Command {
	flags := append([]cli.Flag{
		&cli.BoolFlag{Name: "no-wait", Aliases: []string{"n"},
			Usage: "give up at once when the lock is busy (always so for hook)"},
		durationFlag("timeout", nil, "end CMD when it runs longer than `DUR`", hook.DefaultTimeout),
		durationFlag("grace", nil, "time `DUR` between TERM and KILL", supervise.DefaultGrace),
		durationFlag("stuck-after", nil, "warn the agent when the holder has held the lock "+
			"longer than `DUR` (0: never)", hook.DefaultStuckAfter),
		&cli.BoolFlag{Name: "once", Usage: "skip a session whose run already ended with done"},
		&cli.StringFlag{Name: "runner-log", Usage: "CMD's standard output and error go to " +
			"`FILE` (default: runner.log in the state directory)"},
		&cli.StringFlag{Name: "skipped-log", Usage: "also write every skip to `FILE`"},
		// Not flags of hook; named so that using them gets a clear message.
		&cli.StringFlag{Name: "wait", Aliases: []string{"w"}, Hidden: true},
		&cli.StringFlag{Name: "session", Hidden: true},
		&cli.StringFlag{Name: handoffFlag, Hidden: true},
	}, globalFlags(true)...)
	for _, f := range flags {
		if sf, ok := f.(*cli.StringFlag); ok && sf.Name == "log" {
			sf.Usage, sf.DefaultText = "event log `FILE`", "events.log in the state directory"
		}
	}
	return &cli.Command{
		Name:        "hook",
		Usage:       "Stop-hook entry: start CMD detached under the lock, return at once",
		UsageText:   "runnerlock hook [flags] -- CMD [ARG...] < hook-event.json",
		Description: hookHelp,
		Flags:       flags,
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return usageErr("hook", "%v", err)
		},
		Action: doHook,
	}
}

// doHook fires the hook, or runs its detached supervisor. A Stop hook
// that exits 2 keeps the agent from stopping, and a Go panic exits 2: a
// panic here becomes status 1. (A fatal runtime error cannot be recovered;
// the hook script turns its 2 into 1.)
func doHook(c *cli.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			debugf(c, "panic: %v\n%s", r, debug.Stack())
			err = &exitError{code: exitBadInput,
				msg: fmt.Sprintf("internal error: %v (please report it)", r)}
		}
	}()

	if c.IsSet("wait") {
		return usageErr("hook", "--wait: a hook never waits for the lock; "+
			"the agent would wait with it")
	}
	if c.IsSet("session") {
		return usageErr("hook", "--session: the session is the input's session_id")
	}
	hc, err := newHookConfig(c)
	if err != nil {
		return err
	}
	defer hc.close()
	ctx := context.Background()

	if c.IsSet(handoffFlag) {
		mode := hook.Mode(c.String(handoffFlag))
		res, err := hook.Supervise(ctx, &hc.cfg, mode)
		if errors.Is(err, hook.ErrNotHandedOff) {
			return usageErr("hook", "--%s is internal: %v", handoffFlag, err)
		}
		if err != nil {
			return hookError(err)
		}
		if res.Status != 0 {
			return &exitError{code: res.Status}
		}
		return nil
	}

	t0 := time.Now()
	out, err := hook.Fire(ctx, &hc.cfg)
	switch {
	case err != nil:
	case out.Skipped != "":
		debugf(c, "skipped (%s) in %s", out.Skipped, time.Since(t0))
	default:
		debugf(c, "handed the lock (%s) to supervisor %d, run %q, in %s", out.Mode,
			out.Supervisor, out.Run, time.Since(t0))
	}
	return hookError(err)
}

// hookError maps the hook's errors to exit statuses, never 2.
func hookError(err error) error {
	var ie *hook.InputError
	var se *hook.SupervisorError
	var start *supervise.StartError
	var ue *lock.UnusableError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ie):
		return &exitError{code: exitBadInput, msg: ie.Error()}
	case errors.As(err, &se):
		code := exitSoftware
		if se.Status != 0 && se.Status != 2 {
			code = se.Status
		} else if se.Unusable {
			code = exitCantLock
		}
		return &exitError{code: code, msg: se.Error()}
	case errors.As(err, &start):
		return &exitError{code: start.Status, msg: start.Error()}
	case errors.As(err, &ue):
		return err // report gives it 73, with its hint
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return err
	}
	return &exitError{code: exitSoftware, msg: err.Error()}
}

// hookConfig is the hook's Config with the logs it opened.
type hookConfig struct {
	cfg     hook.Config
	events  *evlog.Logger
	skipped *evlog.Logger
}

func (hc *hookConfig) close() {
	hc.events.Close()
	hc.skipped.Close()
}

func newHookConfig(c *cli.Context) (*hookConfig, error) {
	o, err := parseRunFlags(c, "hook")
	if err != nil {
		return nil, err
	}
	if c.NArg() == 0 {
		return nil, usageErr("hook", "no command given: runnerlock hook [flags] -- CMD [ARG...]")
	}
	if c.Duration("timeout") == 0 {
		return nil, usageErr("hook", "--timeout must be more than 0: a detached run "+
			"needs a budget, since nobody watches it")
	}
	if d := c.Duration("stuck-after"); d < 0 {
		return nil, usageErr("hook", "--stuck-after %s: a duration cannot be negative", d)
	}
	formatName := global(c, "log-format")
	format, err := evlog.ParseFormat(formatName)
	if err != nil {
		return nil, usageErr("hook", "--log-format: %v", err)
	}

	eventPath := global(c, "log")
	runnerPath := c.String("runner-log")
	stateDir := ""
	if eventPath == "" || runnerPath == "" || c.Bool("once") {
		stateDir = hookStateDir(c)
	}
	if eventPath == "" {
		eventPath = "-"
		if stateDir != "" {
			eventPath = filepath.Join(stateDir, "events.log")
		}
	}
	if runnerPath == "" && stateDir != "" {
		runnerPath = filepath.Join(stateDir, "runner.log")
	}

	hc := &hookConfig{events: evlog.OpenOrStderr(eventPath, format, c.App.ErrWriter)}
	skippedPath := c.String("skipped-log")
	if skippedPath != "" {
		l, err := evlog.Open(skippedPath, format)
		if err != nil {
			fmt.Fprintf(c.App.ErrWriter, "runnerlock: warning: cannot open skipped log: %v\n", err)
		} else {
			l.SetWarnOutput(c.App.ErrWriter)
			hc.skipped = l
		}
	}

	job := o.job
	hc.cfg = hook.Config{
		Lock:       job.Lock,
		Args:       c.Args().Slice(),
		Timeout:    job.Timeout,
		Grace:      job.Grace,
		StuckAfter: c.Duration("stuck-after"),
		Once:       c.Bool("once"),
		StateDir:   stateDir,
		Log:        hc.events,
		RunnerLog:  runnerPath,
		Stdin:      os.Stdin,
		Stdout:     c.App.Writer,
		Stderr:     c.App.ErrWriter,
	}
	if hc.skipped != nil {
		hc.cfg.SkippedLog = hc.skipped
	}
	cfg := &hc.cfg
	cfg.SupervisorArgs = func(m hook.Mode) []string {
		// Everything resolved, so that the supervisor decides nothing anew.
		a := []string{"hook", "--" + handoffFlag, string(m), "--lock", cfg.Lock,
			"--log", eventPath, "--log-format", formatName, "--timeout", cfg.Timeout.String(),
			"--grace", cfg.Grace.String(), "--stuck-after", cfg.StuckAfter.String()}
		if cfg.RunnerLog != "" {
			a = append(a, "--runner-log", cfg.RunnerLog)
		}
		if skippedPath != "" {
			a = append(a, "--skipped-log", skippedPath)
		}
		if cfg.Once {
			a = append(a, "--once")
		}
		if debugOn(c) {
			a = append(a, "--debug")
		}
		return append(append(a, "--"), cfg.Args...)
	}
	return hc, nil
}

// hookStateDir returns the state directory, created if need be, or "" with
// one warning when there is none: its logs then go to standard error.
func hookStateDir(c *cli.Context) string {
	dir, err := hook.StateDir()
	if err == nil {
		err = hook.EnsureDir(dir)
	}
	if err != nil {
		fmt.Fprintf(c.App.ErrWriter, "runnerlock: warning: no state directory (%v); "+
			"events go to standard error, the run's output is discarded, "+
			"and --once does not skip\n", err)
		return ""
	}
	return dir
}
