//go:build linux

package lock

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNextFence(t *testing.T) {
	now := time.Date(2026, 12, 3, 9, 55, 2, 0, time.UTC)
	clock := now.UnixMicro()
	cases := []struct {
		name    string
		prev    int64
		want    int64
		wantErr bool
	}{
		{"no previous record: the clock", 0, clock, false},
		{"previous from the past: the clock", clock - 1000, clock, false},
		{"previous equal to the clock: one more", clock, clock + 1, false},
		{"previous far in the future: one more", 9_000_000_000_000_000, 9_000_000_000_000_001, false},
		{"previous at the limit: exhausted", MaxFence, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := NextFence(c.prev, now)
			if (err != nil) != c.wantErr || got != c.want {
				t.Fatalf("NextFence(%d) = %d, %v; want %d, error %v", c.prev, got, err, c.want,
					c.wantErr)
			}
			if err == nil && (got <= c.prev || got > MaxFence) {
				t.Fatalf("fence %d does not grow past %d within 53 bits", got, c.prev)
			}
		})
	}
}

func TestParseRecord(t *testing.T) {
	good := Record{PID: 42, PIDStart: 7, Run: "ab", Session: "s", Fence: 9, State: StateRunning,
		Command: []string{"sh", "-c", "x"}}
	cases := []struct {
		name    string
		data    string
		wantErr bool
	}{
		{"record", string(good.Marshal()), false},
		{"record and an old longer tail", string(good.Marshal()) + `ld tail"}` + "\n", false},
		{"unknown fields", `{"pid":1,"fence":2,"state":"released","extra":[1]}`, false},
		{"empty", "", true},
		{"spaces", "  \n", true},
		{"not json", "hello", true},
		{"array", "[1,2]", true},
		{"torn", `{"pid":42,"run":"a`, true},
		{"two objects", `{"pid":1} {"pid":2}`, true},
		{"negative fence", `{"pid":1,"fence":-1}`, true},
		{"fence beyond 53 bits", `{"pid":1,"fence":9007199254740993}`, true},
		{"negative pid", `{"pid":-5,"fence":1}`, true},
		{"wrong type", `{"pid":"x","fence":1}`, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseRecord([]byte(c.data))
			if (err != nil) != c.wantErr {
				t.Fatalf("ParseRecord(%q) error = %v, want error %v", c.data, err, c.wantErr)
			}
		})
	}
	if _, err := ParseRecord(nil); !errors.Is(err, ErrNoRecord) {
		t.Errorf("empty file: %v, want ErrNoRecord", err)
	}
}

func TestRecordRoundTripThroughTheLockFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.lock")
	h := mustAcquire(t, path)
	if _, err := h.Previous(); !errors.Is(err, ErrNoRecord) {
		t.Fatalf("new lock file: %v, want ErrNoRecord", err)
	}
	long := NewRecord("run1", "sess", []string{"sh", "-c", strings.Repeat("x", 10000)})
	long.Fence = 5
	if err := h.WriteRecord(long); err != nil {
		t.Fatal(err)
	}
	short := NewRecord("run2", "sess", []string{"true"})
	short.Fence, short.State = 6, StateReleased
	if err := h.WriteRecord(short); err != nil {
		t.Fatal(err)
	}

	got, err := ReadRecord(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Run != "run2" || got.Fence != 6 || got.State != StateReleased || got.PID != os.Getpid() {
		t.Fatalf("read back %+v", got)
	}
	b, _ := os.ReadFile(path)
	if strings.Count(string(b), "\n") != 1 {
		t.Fatalf("lock file holds more than one line: %q", b)
	}
	if got.BootID == "" || got.PIDNS == "" || got.PIDStart == 0 {
		t.Errorf("record lacks the facts that judge its pid: %+v", got)
	}
}

func TestClipCommandKeepsRecordsSmall(t *testing.T) {
	args := make([]string, 1000)
	for i := range args {
		args[i] = strings.Repeat("a", 100)
	}
	r := NewRecord("r", "s", args)
	if n := len(r.Marshal()); n > maxCommandText+2048 {
		t.Fatalf("record of %d bytes for a huge command", n)
	}
}

func TestWriteRecordRefusesForeignContent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(path, []byte("my notes\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := mustAcquire(t, path)
	err := h.WriteRecord(NewRecord("r", "s", nil))
	var ue *UnusableError
	if !errors.As(err, &ue) {
		t.Fatalf("got %v, want a refusal to overwrite", err)
	}
	b, _ := os.ReadFile(path)
	if string(b) != "my notes\n" {
		t.Fatalf("file changed to %q", b)
	}
}

func TestJudge(t *testing.T) {
	me := Self()
	if Judge(me) != Alive {
		t.Fatalf("Judge(self) = %v", Judge(me))
	}
	reused := me
	reused.Start++
	if Judge(reused) != Dead {
		t.Errorf("a pid with another start time: %v, want dead", Judge(reused))
	}
	other := me
	other.BootID = "another-boot"
	if Judge(other) != Unknown {
		t.Errorf("another boot: %v, want unknown", Judge(other))
	}
	ns := me
	ns.PIDNS = "pid:[1]"
	if Judge(ns) != Unknown {
		t.Errorf("another pid namespace: %v, want unknown", Judge(ns))
	}
	gone := me
	gone.PID = reapedPID(t)
	if Judge(gone) != Dead {
		t.Errorf("a reaped pid: %v, want dead", Judge(gone))
	}
}

func TestParseStat(t *testing.T) {
	line := "123 (a) b (c)) S 1 123 123 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 98765 1 2 3\n"
	start, state, err := parseStat([]byte(line))
	if err != nil || start != 98765 || state != 'S' {
		t.Fatalf("parseStat = %d, %c, %v", start, state, err)
	}
	for _, bad := range []string{"", "123 (x", "1 (x) S 1 2"} {
		if _, _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) accepted", bad)
		}
	}
}
