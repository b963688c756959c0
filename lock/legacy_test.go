package lock

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParsePID(t *testing.T) {
	const self, pidMax = 777, 32768
	tests := []struct {
		name    string
		content string
		want    int
		problem string // a part of the reason, when want is 0
	}{
		{"shell", "4242\n", 4242, ""},
		{"bare", "4242", 4242, ""},
		{"whitespace around", " \t4242 \r\n", 4242, ""},
		{"highest pid", "32767\n", 32767, ""},
		{"empty", "", 0, "empty"},
		{"whitespace only", " \n\t \n", 0, "only whitespace"},
		{"garbage", "hello\n", 0, `"hello"`},
		{"digits then garbage", "42abc\n", 0, "not a pid"},
		{"two pids", "42 43\n", 0, "not a pid"},
		{"zero", "0\n", 0, "holds 0"},
		{"zeros", "000\n", 0, "holds 0"},
		{"negative", "-42\n", 0, "negative"},
		{"plus sign", "+42\n", 0, "not a pid"},
		{"leading zero", "0042\n", 0, "not a pid as a shell writes one"},
		{"pid_max itself", "32768\n", 0, "beyond pid_max"},
		{"over pid_max", "99999\n", 0, "beyond pid_max"},
		{"overflows int", "99999999999999999999999\n", 0, "beyond pid_max"},
		{"our own pid", "777\n", 0, "names this process"},
		{"NUL bytes", "42\x00\n", 0, "not a pid"},
		{"huge", strings.Repeat("4", 65), 0, "more than 64 bytes"},
		{"huge whitespace", strings.Repeat(" ", 100) + "42", 0, "more than 64 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, problem := parsePID([]byte(tt.content), self, pidMax)
			if got != tt.want {
				t.Fatalf("parsePID(%q) = %d (%s); want %d", tt.content, got, problem, tt.want)
			}
			if tt.want == 0 && !strings.Contains(problem, tt.problem) {
				t.Fatalf("parsePID(%q) problem %q; want it to mention %q", tt.content, problem,
					tt.problem)
			}
			if tt.want != 0 && problem != "" {
				t.Fatalf("parsePID(%q) problem %q for a good pid", tt.content, problem)
			}
		})
	}
}

func TestMigrateResultString(t *testing.T) {
	tests := []struct {
		r    MigrateResult
		want string
	}{
		{MigrateResult{Outcome: OutcomeLockFile}, "already a lock file"},
		{MigrateResult{Outcome: OutcomeFree}, "free (no file)"},
		{MigrateResult{Outcome: OutcomeMigrated, Reason: LegacyHolderDead, PID: 4242},
			"migrated (holder-dead, old pid 4242)"},
		{MigrateResult{Outcome: OutcomeMigrated, Reason: LegacyNoPIDAged},
			"migrated (no-pid-aged)"},
		{MigrateResult{Outcome: OutcomeWouldMigrate, Reason: LegacyPIDReused, PID: 7},
			"would migrate (pid-reused, old pid 7)"},
		{MigrateResult{Outcome: OutcomeBusy, Reason: LegacyHolderAlive, PID: 4242},
			"busy: legacy run alive (pid 4242)"},
		{MigrateResult{Outcome: OutcomeBusy, Reason: LegacyNoPIDYoung, Age: 3 * time.Minute,
			MaxAge: time.Hour},
			"busy: legacy directory without a usable pid, 3m0s old (stale after 1h0m0s)"},
		{MigrateResult{Outcome: OutcomeRolledBack},
			"rolled back (lock file removed; legacy hooks can take the path)"},
		{MigrateResult{Outcome: OutcomeHeld, PID: 9}, "busy: the lock is held (pid 9)"},
		{MigrateResult{Outcome: OutcomeLegacy}, "already a legacy directory"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("%s: String() = %q; want %q", tt.r.Outcome, got, tt.want)
		}
	}
}

// withSettle sets legacySettle for one test.
func withSettle(t *testing.T, d time.Duration) {
	t.Helper()
	old := legacySettle
	legacySettle = d
	t.Cleanup(func() { legacySettle = old })
}

// makeLegacyDir makes a legacy lock directory at dir/runner.lock with the
// given pid file content (nil: no pid file) and returns its path.
func makeLegacyDir(t *testing.T, pid *string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "runner.lock")
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if pid != nil {
		writeFile(t, filepath.Join(path, "pid"), *pid)
	}
	return path
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func ptr(s string) *string { return &s }

// age sets the times of path, and of path/pid when there is one, to d ago.
func age(t *testing.T, path string, d time.Duration) {
	t.Helper()
	then := time.Now().Add(-d)
	if err := os.Chtimes(filepath.Join(path, "pid"), then, then); err != nil &&
		!errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, then, then); err != nil {
		t.Fatal(err)
	}
}

// tree is what a directory holds, down to inodes and contents, so that a
// test can say nothing changed.
type tree map[string]string

func snapshot(t *testing.T, dir string) tree {
	t.Helper()
	out := tree{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		v := fi.Mode().String() + " ino=" + itoa(int(st.Ino))
		if p != dir {
			// The top's time changes with a temporary file made and removed
			// in it; what it holds is compared entry by entry.
			v += " " + fi.ModTime().String()
		}
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			v += " " + string(b)
		}
		out[p] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (a tree) mustEqual(t *testing.T, b tree) {
	t.Helper()
	for k, v := range a {
		if b[k] != v {
			t.Errorf("%s: was %q, now %q", k, v, b[k])
		}
	}
	for k, v := range b {
		if _, ok := a[k]; !ok {
			t.Errorf("%s appeared: %q", k, v)
		}
	}
}

// siblings lists what sits beside path in its directory.
func siblings(t *testing.T, path string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if e.Name() != filepath.Base(path) {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestAcquireRefusesUnexpectedEntries(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
		want  string
	}{
		{"a file besides pid", func(t *testing.T, path string) {
			writeFile(t, filepath.Join(path, "notes.txt"), "mine")
		}, `"notes.txt"`},
		{"a hidden file", func(t *testing.T, path string) {
			writeFile(t, filepath.Join(path, ".keep"), "")
		}, `".keep"`},
		{"a directory besides pid", func(t *testing.T, path string) {
			if err := os.Mkdir(filepath.Join(path, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, `"sub"`},
		{"pid is a directory", func(t *testing.T, path string) {
			os.Remove(filepath.Join(path, "pid"))
			if err := os.Mkdir(filepath.Join(path, "pid"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, `"pid" as a directory`},
		{"pid is a symlink", func(t *testing.T, path string) {
			os.Remove(filepath.Join(path, "pid"))
			if err := os.Symlink("/etc/passwd", filepath.Join(path, "pid")); err != nil {
				t.Fatal(err)
			}
		}, `"pid" as a symbolic link`},
		{"pid is a FIFO", func(t *testing.T, path string) {
			os.Remove(filepath.Join(path, "pid"))
			if err := syscall.Mkfifo(filepath.Join(path, "pid"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, `"pid" as a FIFO`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withSettle(t, 0)
			// Stale by every other measure: without the refusal it would be
			// migrated.
			path := makeLegacyDir(t, ptr(""))
			tt.setup(t, path)
			age(t, path, 48*time.Hour)
			before := snapshot(t, filepath.Dir(path))

			h, err := Acquire(context.Background(), path, Options{})
			if h != nil {
				h.Release()
			}
			var ue *UnusableError
			if !errors.As(err, &ue) {
				t.Fatalf("Acquire = %v; want an *UnusableError", err)
			}
			if !strings.Contains(ue.Error(), tt.want) || ue.Hint == "" {
				t.Fatalf("error %q (hint %q) should name %s and say what to do", ue, ue.Hint,
					tt.want)
			}
			before.mustEqual(t, snapshot(t, filepath.Dir(path)))

			if _, err := MigrateLegacy(context.Background(), path, MigrateOptions{}); !errors.As(
				err, &ue) {
				t.Fatalf("MigrateLegacy = %v; want an *UnusableError", err)
			}
			if _, err := MigrateLegacy(context.Background(), path,
				MigrateOptions{DryRun: true}); !errors.As(err, &ue) {
				t.Fatalf("MigrateLegacy dry run = %v; want an *UnusableError", err)
			}
			before.mustEqual(t, snapshot(t, filepath.Dir(path)))
			if d := DescribeLegacy(path).Decision; d.Reason != LegacyUnexpected || d.Stale {
				t.Fatalf("DescribeLegacy decision %+v; want %s", d, LegacyUnexpected)
			}
		})
	}
}

func TestRollback(t *testing.T) {
	ctx := context.Background()
	t.Run("free lock file is removed", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "runner.lock")
		h := mustAcquireLegacyTest(t, path)
		if err := h.WriteRecord(NewRecord("r1", "s", []string{"true"})); err != nil {
			t.Fatal(err)
		}
		h.Release()

		res, err := Rollback(ctx, path, MigrateOptions{})
		if err != nil || res.Outcome != OutcomeRolledBack {
			t.Fatalf("Rollback = %+v, %v; want %s", res, err, OutcomeRolledBack)
		}
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("lock file still there: %v", err)
		}
		// A legacy hook's mkdir now succeeds.
		if err := os.Mkdir(path, 0o755); err != nil {
			t.Fatalf("legacy mkdir after rollback: %v", err)
		}
	})
	t.Run("held lock file is left alone", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "runner.lock")
		h := mustAcquireLegacyTest(t, path)
		defer h.Release()
		before := snapshot(t, filepath.Dir(path))

		res, err := Rollback(ctx, path, MigrateOptions{})
		if err != nil || res.Outcome != OutcomeHeld {
			t.Fatalf("Rollback = %+v, %v; want %s", res, err, OutcomeHeld)
		}
		before.mustEqual(t, snapshot(t, filepath.Dir(path)))
		if still, _ := h.StillHeld(); !still {
			t.Fatal("the holder lost its lock file")
		}
	})
	t.Run("dry run removes nothing", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "runner.lock")
		mustAcquireLegacyTest(t, path).Release()
		before := snapshot(t, filepath.Dir(path))
		res, err := Rollback(ctx, path, MigrateOptions{DryRun: true})
		if err != nil || res.Outcome != OutcomeWouldRollBack {
			t.Fatalf("Rollback = %+v, %v; want %s", res, err, OutcomeWouldRollBack)
		}
		before.mustEqual(t, snapshot(t, filepath.Dir(path)))
	})
	t.Run("a file that is not a lock file is refused", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "notes")
		if err := os.WriteFile(path, []byte("precious\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, filepath.Dir(path))
		_, err := Rollback(ctx, path, MigrateOptions{})
		var ue *UnusableError
		if !errors.As(err, &ue) {
			t.Fatalf("Rollback = %v; want an *UnusableError", err)
		}
		before.mustEqual(t, snapshot(t, filepath.Dir(path)))
	})
	t.Run("directory and absent path are left alone", func(t *testing.T) {
		path := makeLegacyDir(t, ptr("1\n"))
		before := snapshot(t, filepath.Dir(path))
		if res, err := Rollback(ctx, path, MigrateOptions{}); err != nil ||
			res.Outcome != OutcomeLegacy {
			t.Fatalf("Rollback of a directory = %+v, %v; want %s", res, err, OutcomeLegacy)
		}
		before.mustEqual(t, snapshot(t, filepath.Dir(path)))
		absent := filepath.Join(t.TempDir(), "none")
		if res, err := Rollback(ctx, absent, MigrateOptions{}); err != nil ||
			res.Outcome != OutcomeFree {
			t.Fatalf("Rollback of nothing = %+v, %v; want %s", res, err, OutcomeFree)
		}
		if _, err := os.Lstat(absent); !errors.Is(err, fs.ErrNotExist) {
			t.Fatal("Rollback created a file")
		}
	})
	t.Run("symlink is refused", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "runner.lock")
		target := filepath.Join(dir, "target")
		mustAcquireLegacyTest(t, target).Release()
		if err := os.Symlink(target, path); err != nil {
			t.Fatal(err)
		}
		_, err := Rollback(ctx, path, MigrateOptions{})
		var ue *UnusableError
		if !errors.As(err, &ue) {
			t.Fatalf("Rollback = %v; want an *UnusableError", err)
		}
		if got := siblings(t, path); !slices.Contains(got, "target") {
			t.Fatalf("the link's target was removed: %v", got)
		}
	})
}

func mustAcquireLegacyTest(t *testing.T, path string) *Holder {
	t.Helper()
	h, err := Acquire(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return h
}
