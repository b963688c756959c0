package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/buildbench/runnerlock/lock"
	"github.com/buildbench/runnerlock/lock/supervise"
)

const runHelp = `Takes the lock, runs CMD under it, and releases the lock once CMD and
everything it left behind are gone. CMD inherits the locked descriptor as
fd 3, so the lock stays held while any process of the run is alive; when
CMD exits, runnerlock ends what it left behind (TERM, --grace, KILL). If
runnerlock itself is killed, the kernel kills CMD.

By default runnerlock gives up at once when the lock is busy (like
flock -n), exiting 75 rather than flock(1)'s 1, so that a busy lock is
never mistaken for a failed command.

A legacy mkdir lock directory at the path is decided as 'runnerlock
migrate --help' describes: a stale one is migrated into a lock file and the
run goes ahead, a live legacy run makes runnerlock skip (75), and a
directory holding anything unexpected is refused (73).

Examples:
   runnerlock run -- ./scripts/draft.sh
   runnerlock run --wait 2m -- ./scripts/draft.sh
   runnerlock run --timeout 30m --grace 30s --session "$SESSION" -- make publish

Exit statuses:
   CMD's own status; 128+N when CMD died of signal N
   124  --timeout ended CMD
   75   the lock is busy (or the status given with --busy-exit)
   126  CMD is not executable      127  CMD was not found
   64   usage error                73   the lock path cannot be used
   70   internal error`

func runCommand() *cli.Command {
	flags := append([]cli.Flag{
		&cli.BoolFlag{Name: "no-wait", Aliases: []string{"n"},
			Usage: "give up at once when the lock is busy (the default)"},
		durationFlag("wait", []string{"w"}, "wait up to `DUR` for the lock (0: forever)", 0),
		&cli.IntFlag{Name: "busy-exit", Aliases: []string{"E"}, Value: exitBusy,
			Usage: "exit status `N` when the lock is busy"},
		durationFlag("timeout", nil, "end CMD when it runs longer than `DUR`", 0),
		durationFlag("grace", nil, "time between TERM and KILL", supervise.DefaultGrace),
		&cli.StringFlag{Name: "session", Usage: "session `ID` recorded in every event",
			EnvVars: []string{"RUNNERLOCK_SESSION"}},
		durationFlag("legacy-max-age", nil, "a legacy lock directory without a usable pid "+
			"file is stale once older than `DUR`", lock.DefaultLegacyMaxAge),
	}, globalFlags(true)...)
	return &cli.Command{
		Name:        "run",
		Usage:       "take the lock and run CMD under it",
		UsageText:   "runnerlock run [flags] -- CMD [ARG...]",
		Description: runHelp,
		Flags:       flags,
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return usageErr("run", "%v", err)
		},
		Action: doRun,
	}
}

// runOptions are the validated flags of run (and, where they apply, of
// the hook's supervisor).
type runOptions struct {
	job      supervise.Job
	busyExit int
}

func parseRunFlags(c *cli.Context, name string) (runOptions, error) {
	var o runOptions
	path, err := checkLockPath(c)
	if err != nil {
		return o, err
	}
	if c.IsSet("no-wait") && c.IsSet("wait") {
		return o, usageErr(name, "--no-wait and --wait cannot be used together")
	}
	for _, f := range []string{"wait", "timeout", "grace", "legacy-max-age"} {
		if c.Duration(f) < 0 {
			return o, usageErr(name, "--%s %s: a duration cannot be negative", f, c.Duration(f))
		}
	}
	for _, f := range []string{"grace", "legacy-max-age"} {
		if c.IsSet(f) && c.Duration(f) == 0 {
			return o, usageErr(name, "--%s must be more than 0", f)
		}
	}
	be := c.Int("busy-exit")
	if be < 0 || be > 255 {
		return o, usageErr(name, "--busy-exit %d: an exit status is 0 to 255", be)
	}
	o.busyExit = be
	o.job = supervise.Job{
		Lock:    path,
		Session: c.String("session"),
		Timeout: c.Duration("timeout"),
		Grace:   c.Duration("grace"),
		Wait:    c.IsSet("wait"),
		WaitFor: c.Duration("wait"),

		LegacyMaxAge: c.Duration("legacy-max-age"),
	}
	return o, nil
}

func doRun(c *cli.Context) error {
	o, err := parseRunFlags(c, "run")
	if err != nil {
		return err
	}
	if c.NArg() == 0 {
		return usageErr("run", "no command given: runnerlock run [flags] -- CMD [ARG...]")
	}
	o.job.Args = c.Args().Slice()
	log, err := openEvents(c, "")
	if err != nil {
		return err
	}
	defer log.Close()
	o.job.Log = log
	debugf(c, "lock %s, wait=%v for %s", o.job.Lock, o.job.Wait, o.job.WaitFor)

	ctx := context.Background()
	h, orphan, err := supervise.Take(ctx, &o.job)
	var busy *supervise.BusyError
	if errors.As(err, &busy) {
		logSkip(log, &o.job, busy)
		return &exitError{code: o.busyExit}
	}
	if err != nil {
		log.Error("error", "session", o.job.Session, "reason", "lock-unusable",
			"message", err.Error())
		return err
	}

	res, err := supervise.Run(ctx, h, orphan, &o.job)
	var se *supervise.StartError
	if errors.As(err, &se) {
		return &exitError{code: se.Status, msg: se.Error()}
	}
	if err != nil {
		log.Error("error", "session", o.job.Session, "reason", "lock-unusable",
			"message", err.Error())
		return err
	}
	debugf(c, "run %s ended: %s, status %d", res.Record.Run, res.Outcome, res.Status)
	if len(res.Survivors) > 0 {
		fmt.Fprintf(c.App.ErrWriter, "runnerlock: warning: processes %v survived KILL "+
			"and may still hold the lock\n", res.Survivors)
	}
	if res.Status != 0 {
		return &exitError{code: res.Status}
	}
	return nil
}

// logSkip writes the skip event of a busy lock, with what is known of the
// holder.
func logSkip(log supervise.Logger, job *supervise.Job, busy *supervise.BusyError) {
	kv := []any{"session", job.Session, "reason", "runner-busy"}
	var le *lock.LegacyBusyError
	if errors.As(busy, &le) {
		kv = append(kv, "holder", "legacy", "holder_pid", le.PID)
	} else if busy.HasRecord && busy.Holder.State == lock.StateRunning {
		h := busy.Holder
		pid := h.PID
		if h.Orphaned() {
			// The recorded supervisor is dead: name a process that really
			// holds the lock (a leftover of that run, or a new holder).
			if pids, err := lock.Holders(job.Lock); err == nil && len(pids) > 0 {
				pid = pids[0]
			}
			kv = append(kv, "holder_supervisor", "dead")
		}
		kv = append(kv, "holder_pid", pid, "holder_session", h.Session, "holder_run", h.Run)
		if !h.Since.IsZero() {
			kv = append(kv, "held", time.Since(h.Since).Round(time.Second))
		}
	}
	log.Event("skip", kv...)
}
