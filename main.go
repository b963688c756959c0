// Command runnerlock serializes runs with a lock the kernel owns: an
// advisory flock(2) on one file, dropped by the kernel the moment its
// holder dies, however it dies. See README.md.
//
// This file is the command line only: flags, commands, and the mapping of
// errors to exit statuses. The lock lives in lock/, the run's supervision
// in lock/supervise, the Stop hook in hook/, the event log in log/.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/buildbench/runnerlock/lock"
	"github.com/buildbench/runnerlock/lock/supervise"
	evlog "github.com/buildbench/runnerlock/log"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = ""

// Exit statuses, in one place. The command's own status passes through.
const (
	exitOK       = 0
	exitBadInput = 1  // hook: bad hook input
	exitUsage    = 64 // EX_USAGE: bad flags or arguments
	exitSoftware = 70 // EX_SOFTWARE: an internal error
	exitCantLock = 73 // EX_CANTCREAT: the lock path cannot be used
	exitBusy     = 75 // EX_TEMPFAIL: the lock is held (run's default)
)

func main() {
	supervise.Prepare()
	os.Exit(runMain(os.Args, os.Stdout, os.Stderr))
}

// exitError carries an exit status and the one line (and hint) that
// explain it. A zero-length msg prints nothing.
type exitError struct {
	code int
	msg  string
	hint string
}

func (e *exitError) Error() string { return e.msg }

func usageErr(cmd, format string, a ...any) *exitError {
	hint := "see 'runnerlock --help'"
	if cmd != "" {
		hint = "see 'runnerlock " + cmd + " --help'"
	}
	return &exitError{code: exitUsage, msg: fmt.Sprintf(format, a...), hint: hint}
}

// runMain runs the command line and returns the exit status; tests call it.
func runMain(args []string, stdout, stderr io.Writer) int {
	app := newApp(stdout, stderr)
	err := app.RunContext(context.Background(), args)
	return report(err, stderr)
}

// report prints err once, with the tool's prefix, and maps it to a status.
func report(err error, stderr io.Writer) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	var ue *lock.UnusableError
	switch {
	case errors.As(err, &ee):
		if ee.msg != "" {
			fmt.Fprintf(stderr, "runnerlock: error: %s\n", oneLine(ee.msg))
		}
		if ee.hint != "" {
			fmt.Fprintf(stderr, "runnerlock: hint: %s\n", oneLine(ee.hint))
		}
		return ee.code
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "runnerlock: error: %s\n", oneLine(ue.Error()))
		if ue.Hint != "" {
			fmt.Fprintf(stderr, "runnerlock: hint: %s\n", oneLine(ue.Hint))
		}
		return exitCantLock
	}
	fmt.Fprintf(stderr, "runnerlock: error: %s\n", oneLine(err.Error()))
	return exitSoftware
}

// oneLine keeps a message on one line whatever it quotes.
func oneLine(s string) string {
	return strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(s)
}

func buildVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			return bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return "devel-" + s.Value[:12]
			}
		}
	}
	return "devel"
}

// globalFlags are accepted before the command and after its name, since
// operators write them in both places. The copies on commands carry no
// defaults, so that a value given before the command is not hidden.
func globalFlags(onCommand bool) []cli.Flag {
	lockFlag := &cli.StringFlag{Name: "lock", Usage: "lock `PATH`", Value: lock.DefaultPath,
		EnvVars: []string{"RUNNERLOCK_LOCK"}}
	logFlag := &cli.StringFlag{Name: "log", Usage: "event log `FILE` (default: standard error)",
		EnvVars: []string{"RUNNERLOCK_LOG"}}
	formatFlag := &cli.StringFlag{Name: "log-format", Usage: "event log format: logfmt or json",
		Value: "logfmt"}
	debugFlag := &cli.BoolFlag{Name: "debug", Usage: "print diagnostic lines on standard error"}
	if onCommand {
		lockFlag.Value, lockFlag.EnvVars, lockFlag.DefaultText = "", nil, "global --lock"
		logFlag.EnvVars, logFlag.DefaultText = nil, "global --log"
		formatFlag.Value, formatFlag.DefaultText = "", "global --log-format"
	}
	return []cli.Flag{lockFlag, logFlag, formatFlag, debugFlag}
}

// global returns a global flag's value: from after the command name if it
// was given there, else from before it (or its environment or default).
func global(c *cli.Context, name string) string {
	var top *cli.Context
	for _, ctx := range c.Lineage() {
		if ctx.App == nil {
			break // the empty context above the application's
		}
		top = ctx
		if slices.Contains(ctx.LocalFlagNames(), name) {
			return ctx.String(name)
		}
	}
	return top.String(name)
}

func debugOn(c *cli.Context) bool {
	for _, ctx := range c.Lineage() {
		if ctx.App != nil && ctx.Bool("debug") {
			return true
		}
	}
	return false
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:    "runnerlock",
		Usage:   "serialize runs with a lock that survives kill -9",
		Version: buildVersion(),
		Description: "runnerlock takes an advisory flock(2) on one lock file and runs a command\n" +
			"under it. The kernel drops the lock the moment its holder dies, so a run\n" +
			"killed with kill -9 never leaves a stale lock behind.\n\n" +
			"Examples:\n" +
			"   runnerlock run -- ./scripts/draft.sh\n" +
			"   runnerlock run --wait 5m --timeout 30m -- make publish\n" +
			"   runnerlock status",
		Flags:                globalFlags(false),
		Writer:               stdout,
		ErrWriter:            stderr,
		HideHelpCommand:      true,
		EnableBashCompletion: false,
		ExitErrHandler:       func(*cli.Context, error) {},
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return usageErr("", "%v", err)
		},
		Commands: []*cli.Command{runCommand(), hookCommand(), statusCommand(), migrateCommand()},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usageErr("", "no such command %q", c.Args().First())
			}
			_ = cli.ShowAppHelp(c)
			return &exitError{code: exitUsage}
		},
	}
	return app
}

// openEvents opens the event log named by --log, or standard error. A log
// that cannot be opened costs one warning, never the run.
func openEvents(c *cli.Context, fallback string) (*evlog.Logger, error) {
	format, err := evlog.ParseFormat(global(c, "log-format"))
	if err != nil {
		return nil, usageErr(c.Command.Name, "--log-format: %v", err)
	}
	path := global(c, "log")
	if path == "" {
		path = fallback
	}
	return evlog.OpenOrStderr(path, format, c.App.ErrWriter), nil
}

func debugf(c *cli.Context, format string, a ...any) {
	if debugOn(c) {
		fmt.Fprintf(c.App.ErrWriter, "runnerlock: debug: "+format+"\n", a...)
	}
}

// checkLockPath refuses an empty lock path before anything is opened.
func checkLockPath(c *cli.Context) (string, error) {
	p := global(c, "lock")
	if p == "" {
		return "", usageErr(c.Command.Name, "--lock: the lock path is empty")
	}
	return p, nil
}

func durationFlag(name string, aliases []string, usage string,
	def time.Duration) *cli.DurationFlag {
	return &cli.DurationFlag{Name: name, Aliases: aliases, Usage: usage, Value: def}
}
