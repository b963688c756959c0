package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/buildbench/runnerlock/lock"
)

const migrateHelp = `Turns legacy mkdir lock directories into lock files once the legacy run
that made them is gone. It decides as every runnerlock command does when it
finds a directory at the lock path:

   PATH/pid names a live process that wrote it   busy: left alone
   PATH/pid names no process, or a zombie        stale (holder-dead)
   PATH/pid names a process started later        stale (pid-reused)
   no usable pid, older than --legacy-max-age    stale (no-pid-aged)
   no usable pid, younger                        busy: left alone
   anything in PATH besides pid                  refused: nothing is deleted

A stale directory is swapped for a new, free lock file in one step
(renameat2 RENAME_EXCHANGE) and removed only if it is the very directory
that was judged, so a legacy hook that makes a fresh directory at any
instant keeps it. Each migration is logged as a migrate event. Once PATH is
a lock file, legacy hooks find that mkdir fails and skip, so old and new
hooks can run side by side during a rollout.

With --rollback, migrate hands each PATH back to legacy hooks instead: it
removes the lock file, only while the lock is free (taken without waiting,
so a run in progress is never disturbed) and only if it holds a holder
record or nothing. Switch every host's hook back to the legacy script
first: a runnerlock started later migrates a stale directory again.

Prints one line per PATH with its decision. PATH defaults to --lock.

Examples:
   runnerlock migrate --dry-run
   runnerlock migrate
   runnerlock migrate --wait 30m /tmp/buildbench-runner.lock
   runnerlock migrate --legacy-max-age 10m
   runnerlock migrate --rollback

Exit statuses:
   0    every PATH is a lock file now, or free (with --dry-run: would be;
        with --rollback: every PATH is free for legacy hooks)
   75   a live holder was left alone: a legacy run (or, with --rollback, a
        run holding the lock); run again later, or use --wait
   73   a PATH was refused: files besides pid in the directory, another
        user's directory, a filesystem without the exchange, a symlink
   64   usage error                70   internal error`

func migrateCommand() *cli.Command {
	flags := append([]cli.Flag{
		&cli.BoolFlag{Name: "dry-run", Usage: "say what would be done; change nothing, take no lock"},
		durationFlag("wait", []string{"w"},
			"wait up to `DUR` in all for live legacy holders to exit (0: forever)", 0),
		durationFlag("legacy-max-age", nil, "a legacy directory without a usable pid file "+
			"is stale once older than `DUR`", lock.DefaultLegacyMaxAge),
		&cli.BoolFlag{Name: "rollback",
			Usage: "hand PATH back to legacy hooks: remove the lock file while it is free"},
	}, globalFlags(true)...)
	return &cli.Command{
		Name:  "migrate",
		Usage: "turn legacy lock directories whose owner is gone into lock files",
		UsageText: "runnerlock migrate [--dry-run] [--wait DUR] [--legacy-max-age DUR] " +
			"[--rollback] [PATH...]",
		Description: migrateHelp,
		Flags:       flags,
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return usageErr("migrate", "%v", err)
		},
		Action: doMigrate,
	}
}

// migrateOptions are the validated flags and arguments of migrate.
type migrateOptions struct {
	lock     lock.MigrateOptions
	waitFor  time.Duration // 0: forever, with lock.Wait
	rollback bool
	paths    []string
}

func parseMigrateFlags(c *cli.Context) (migrateOptions, error) {
	var o migrateOptions
	for _, f := range []string{"wait", "legacy-max-age"} {
		if c.Duration(f) < 0 {
			return o, usageErr("migrate", "--%s %s: a duration cannot be negative", f,
				c.Duration(f))
		}
	}
	switch {
	case c.Bool("dry-run") && c.IsSet("wait"):
		return o, usageErr("migrate", "--dry-run and --wait cannot be used together: "+
			"a dry run never waits")
	case c.Bool("rollback") && c.IsSet("legacy-max-age"):
		return o, usageErr("migrate", "--rollback and --legacy-max-age cannot be used "+
			"together: a rollback judges no legacy directory")
	case c.IsSet("legacy-max-age") && c.Duration("legacy-max-age") == 0:
		return o, usageErr("migrate", "--legacy-max-age must be more than 0")
	}
	o.lock = lock.MigrateOptions{
		DryRun:       c.Bool("dry-run"),
		Wait:         c.IsSet("wait"),
		LegacyMaxAge: c.Duration("legacy-max-age"),
	}
	o.waitFor = c.Duration("wait")
	o.rollback = c.Bool("rollback")

	o.paths = c.Args().Slice()
	if len(o.paths) == 0 {
		p, err := checkLockPath(c)
		if err != nil {
			return o, err
		}
		o.paths = []string{p}
	}
	for _, p := range o.paths {
		if p == "" {
			return o, usageErr("migrate", "an empty PATH")
		}
	}
	return o, nil
}

func doMigrate(c *cli.Context) error {
	o, err := parseMigrateFlags(c)
	if err != nil {
		return err
	}
	log, err := openEvents(c, "")
	if err != nil {
		return err
	}
	defer log.Close()

	ctx := context.Background()
	if o.lock.Wait && o.waitFor > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.waitFor)
		defer cancel()
	}

	status := exitOK
	for _, path := range o.paths {
		debugf(c, "migrate %s: dry-run=%v wait=%v rollback=%v", path, o.lock.DryRun,
			o.lock.Wait, o.rollback)
		var res lock.MigrateResult
		if o.rollback {
			res, err = lock.Rollback(ctx, path, o.lock)
		} else {
			res, err = lock.MigrateLegacy(ctx, path, o.lock)
		}
		if err != nil {
			status = worse(status, refuse(c, log, path, err))
			continue
		}
		fmt.Fprintf(c.App.Writer, "%s: %s\n", path, res)

		switch res.Outcome {
		case lock.OutcomeMigrated:
			kv := []any{"path", path, "old_pid", res.PID, "reason", res.Reason}
			if res.Leftover != "" {
				kv = append(kv, "leftover", res.Leftover)
			}
			log.Event("migrate", kv...)
		case lock.OutcomeRolledBack:
			log.Event("migrate", "path", path, "reason", "rollback")
		case lock.OutcomeBusy, lock.OutcomeHeld:
			status = worse(status, exitBusy)
		}
	}
	if status != exitOK {
		return &exitError{code: status}
	}
	return nil
}

// refuse reports a path that could not be migrated: its line on stdout,
// the error (and hint) on stderr, an error event; it returns the status.
func refuse(c *cli.Context, log interface{ Error(string, ...any) }, path string,
	err error) int {
	line := err.Error()
	var ue *lock.UnusableError
	if errors.As(err, &ue) {
		line = ue.Reason
	}
	fmt.Fprintf(c.App.Writer, "%s: refused: %s\n", path, oneLine(line))
	log.Error("error", "path", path, "reason", "lock-unusable", "message", err.Error())
	return report(err, c.App.ErrWriter)
}

// worse returns the status that tells the operator more: an internal error,
// then a refusal, then a busy holder, then success.
func worse(a, b int) int {
	rank := func(s int) int {
		switch s {
		case exitOK:
			return 0
		case exitBusy:
			return 1
		case exitCantLock:
			return 2
		}
		return 3
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}
