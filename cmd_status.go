package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/buildbench/runnerlock/lock"
)

const statusHelp = `Says whether the lock is free, held, or a legacy mkdir directory, and who
holds it: the kernel's word (/proc/locks), the processes whose descriptor
holds the lock (/proc/PID/fdinfo), and the holder record. status never
takes the lock, not even for an instant, and never changes anything.

Examples:
   runnerlock status
   runnerlock status --json | jq -r .state

Exit statuses:
   0    the state could be told, whatever it is
   64   usage error
   73   the lock path cannot be inspected`

func statusCommand() *cli.Command {
	return &cli.Command{
		Name:        "status",
		Usage:       "say whether the lock is free or held, and by whom",
		UsageText:   "runnerlock status [--json]",
		Description: statusHelp,
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
		}, globalFlags(true)...),
		OnUsageError: func(c *cli.Context, err error, _ bool) error {
			return usageErr("status", "%v", err)
		},
		Action: doStatus,
	}
}

// statusJSON is the shape of status --json; DESIGN.md names its fields.
type statusJSON struct {
	State       string   `json:"state"`
	Path        string   `json:"path"`
	PID         int      `json:"pid,omitempty"`
	Session     string   `json:"session,omitempty"`
	Run         string   `json:"run,omitempty"`
	Since       string   `json:"since,omitempty"`
	Fence       int64    `json:"fence,omitempty"`
	Command     []string `json:"command,omitempty"`
	Holders     []int    `json:"holders"`
	RecordState string   `json:"record_state,omitempty"`
	LegacyPID   *int     `json:"legacy_pid,omitempty"`
	LegacyAlive *bool    `json:"legacy_alive,omitempty"`
	LegacyAge   string   `json:"legacy_age,omitempty"`
}

func doStatus(c *cli.Context) error {
	if c.NArg() > 0 {
		return usageErr("status", "status takes no arguments, got %q", c.Args().First())
	}
	path, err := checkLockPath(c)
	if err != nil {
		return err
	}
	st, err := lock.Describe(path)
	if err != nil {
		return err
	}
	out := toStatusJSON(st)
	if c.Bool("json") {
		b, _ := json.Marshal(out)
		fmt.Fprintln(c.App.Writer, string(b))
		return nil
	}
	printStatus(c.App.Writer, st)
	return nil
}

// describesHolder reports whether the record is about who holds the lock
// now: a live supervisor among the holders, or a dead one whose run's
// processes still hold it. Otherwise it is an earlier run's record, and the
// holders wrote none (a new holder about to write, or another tool).
func describesHolder(st lock.Status) bool {
	r := st.Record
	if st.State != lock.Held || r == nil || r.State != lock.StateRunning {
		return false
	}
	return st.Supervisor > 0 || r.Orphaned()
}

func toStatusJSON(st lock.Status) statusJSON {
	out := statusJSON{State: st.State, Path: st.Path, Holders: st.Holders}
	if out.Holders == nil {
		out.Holders = []int{}
	}
	if r := st.Record; r != nil && describesHolder(st) {
		out.PID = st.Supervisor
		out.Session, out.Run, out.Fence = r.Session, r.Run, r.Fence
		out.Command, out.RecordState = r.Command, r.State
		if !r.Since.IsZero() {
			out.Since = r.Since.UTC().Format(time.RFC3339)
		}
	}
	if l := st.Legacy; l != nil {
		pid, alive := l.PID, l.Alive
		out.LegacyPID, out.LegacyAlive = &pid, &alive
		if l.Age > 0 {
			out.LegacyAge = l.Age.Round(time.Second).String()
		}
	}
	return out
}

func printStatus(w io.Writer, st lock.Status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	defer tw.Flush()
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("state", st.State)
	row("path", st.Path)
	switch st.State {
	case lock.Held:
		printHeld(row, st)
	case lock.Free:
		if r := st.Record; r != nil {
			row("last", fmt.Sprintf("run %s, session %q, pid %d, %s", r.Run, r.Session,
				r.PID, r.State))
		}
	case lock.Legacy:
		l := st.Legacy
		if l.PID > 0 {
			alive := "dead"
			if l.Alive {
				alive = "alive"
			}
			row("legacy pid", fmt.Sprintf("%d (%s)", l.PID, alive))
		} else {
			row("legacy pid", "none")
		}
		if l.Age > 0 {
			row("age", l.Age.Round(time.Second).String())
		}
		row("hint", "a legacy mkdir lock: 'runnerlock migrate --dry-run' says what it would do")
	}
}

func printHeld(row func(k, v string), st lock.Status) {
	r := st.Record
	if !describesHolder(st) {
		if r != nil {
			row("last", fmt.Sprintf("run %s, session %q, pid %d, %s: an earlier run's record",
				r.Run, r.Session, r.PID, r.State))
		}
		row("holders", joinInts(st.Holders))
		if len(st.Holders) > 0 {
			row("hint", fmt.Sprintf("held by processes that wrote no record (a new run about "+
				"to write one, or another tool such as flock(1)); to end them: kill -TERM %s",
				joinInts(st.Holders)))
		}
		return
	}

	if st.Supervisor > 0 {
		row("pid", fmt.Sprintf("%d (supervisor)", st.Supervisor))
	} else {
		row("pid", fmt.Sprintf("none: the supervisor %d of this run is dead", r.PID))
	}
	row("session", r.Session)
	row("run", r.Run)
	if !r.Since.IsZero() {
		row("since", fmt.Sprintf("%s (%s ago)", r.Since.UTC().Format(time.RFC3339),
			time.Since(r.Since).Round(time.Second)))
	}
	row("command", strings.Join(r.Command, " "))
	row("fence", fmt.Sprint(r.Fence))
	row("holders", joinInts(st.Holders))
	if st.Supervisor > 0 {
		row("hint", fmt.Sprintf("to end the run: kill -TERM %d "+
			"(runnerlock passes it on and cleans up)", st.Supervisor))
		return
	}
	var untied []int
	for _, pid := range st.Holders {
		if lock.RunOf(pid) != r.Run {
			untied = append(untied, pid)
		}
	}
	if len(untied) == 0 {
		row("hint", "leftovers of a run whose supervisor died: the next run ends them "+
			"and takes the lock")
	} else {
		row("hint", fmt.Sprintf("%s hold the lock but are not tied to run %s, so no run "+
			"reclaims it from them; to end them: kill -TERM %s", joinInts(untied), r.Run,
			joinInts(untied)))
	}
}

func joinInts(v []int) string {
	if len(v) == 0 {
		return "none"
	}
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, " ")
}
