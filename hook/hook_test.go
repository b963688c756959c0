//go:build linux

package hook

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/buildbench/runnerlock/lock"
	"github.com/buildbench/runnerlock/lock/supervise"
	evlog "github.com/buildbench/runnerlock/log"
)

func TestStuckMessageSaysWhoAndSinceWhen(t *testing.T) {
	since := time.Date(2026, 12, 3, 1, 55, 2, 0, time.UTC)
	rec := lock.Record{PID: 4242, Session: `evil "quoted"` + "\n", Run: "abc123", Since: since}
	msg := StuckMessage("/tmp/x.lock", rec, 8*time.Hour)
	for _, want := range []string{"4242", "abc123", "8h0m0s", "2026-12-03T01:55:02Z",
		"/tmp/x.lock", "kill -TERM 4242"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("message %q is more than one line", msg)
	}
}

func TestBusySkipTurnsIntoAWarningWhenStuck(t *testing.T) {
	for _, tc := range []struct {
		held  time.Duration
		stuck bool
	}{
		{time.Minute, false},
		{time.Hour, true},
	} {
		var events, skipped, stdout bytes.Buffer
		cfg := &Config{
			Lock:       filepath.Join(t.TempDir(), "lock"),
			StuckAfter: 30 * time.Minute,
			Log:        evlog.New(&events, evlog.Logfmt),
			SkippedLog: evlog.New(&skipped, evlog.Logfmt),
			Stdout:     &stdout,
		}
		be := &supervise.BusyError{Err: lock.ErrBusy, HasRecord: true, Holder: lock.Record{
			PID: 4242, Session: "holder", Run: "r1", State: lock.StateRunning,
			Since: time.Now().Add(-tc.held)}}
		msg := cfg.logBusy("me", be)
		if stuck := msg != ""; stuck != tc.stuck {
			t.Errorf("held %s: stuck=%v", tc.held, stuck)
		}
		line := events.String()
		for _, want := range []string{"skip", `session="me"`, `reason="runner-busy"`,
			"holder_pid=4242", `holder_session="holder"`, "held="} {
			if !strings.Contains(line, want) {
				t.Errorf("held %s: event %q lacks %s", tc.held, line, want)
			}
		}
		if tc.stuck != strings.Contains(line, "stuck=true") ||
			tc.stuck != strings.Contains(line, `level="warn"`) {
			t.Errorf("held %s: event %q", tc.held, line)
		}
		if tc.stuck && !strings.Contains(msg, "pid 4242") {
			t.Errorf("stuck message %q does not name the holder", msg)
		}
		if skipped.String() != line {
			t.Errorf("skipped log %q, want the same line as the event log", skipped.String())
		}
	}
}

func TestConfirmationRoundTrip(t *testing.T) {
	c := confirmation{State: confirmFailed, Message: "x: command not found", Status: 127}
	b, _ := json.Marshal(c)
	var back confirmation
	if err := json.Unmarshal(b, &back); err != nil || back != c {
		t.Errorf("got %+v, %v", back, err)
	}
}

func TestSupervisorEnvDropsTheRunIdentity(t *testing.T) {
	got := supervisorEnv([]string{"HOME=/home/dev", "RUNNERLOCK_RUN=0123456789abcdef",
		"RUNNERLOCK_FENCE=12", "RUNNERLOCK_LOCK=/tmp/x.lock", "RUNNERLOCK_RUNNER=keep"})
	want := []string{"HOME=/home/dev", "RUNNERLOCK_LOCK=/tmp/x.lock", "RUNNERLOCK_RUNNER=keep"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %q, want %q", got, want)
	}
}
