package hook

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

var hostileSessions = []string{
	"../x",
	"../../../../etc/passwd",
	"a/b",
	"/abs/path",
	"..",
	".",
	"-rf",
	"x\ny",
	"nul\x00byte",
	strings.Repeat("s", 100<<10),
}

var markNameRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestMarkNamesOfHostileSessions(t *testing.T) {
	seen := map[string]string{}
	for _, s := range hostileSessions {
		name := MarkName(s)
		if !markNameRE.MatchString(name) {
			t.Errorf("MarkName(%.20q) = %q, want 64 hex digits", s, name)
		}
		if prev, ok := seen[name]; ok {
			t.Errorf("sessions %.20q and %.20q share the mark %s", prev, s, name)
		}
		seen[name] = s
	}
	if MarkName("s1") != MarkName("s1") {
		t.Error("MarkName is not stable")
	}
}

func TestMarksOfHostileSessionsStayInTheirFolder(t *testing.T) {
	root := t.TempDir()
	m := NewMarks(filepath.Join(root, "state"))
	now := time.Now()
	for _, s := range hostileSessions {
		if err := m.Mark(s, now); err != nil {
			t.Fatalf("Mark(%.20q): %v", s, err)
		}
		if done, err := m.Done(s, now); err != nil || !done {
			t.Errorf("Done(%.20q) = %v, %v after Mark", s, done, err)
		}
	}
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		if filepath.Dir(p) != m.Dir || !markNameRE.MatchString(info.Name()) {
			t.Errorf("file %s is not a mark in %s", p, m.Dir)
		}
		if info.Mode().Perm() != 0o600 {
			t.Errorf("mark %s has mode %v, want 0600", p, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestMarkDoneOnlyForItsSession(t *testing.T) {
	m := NewMarks(t.TempDir())
	now := time.Now()
	if done, err := m.Done("s1", now); err != nil || done {
		t.Fatalf("Done before any mark = %v, %v", done, err)
	}
	if err := m.Mark("s1", now); err != nil {
		t.Fatal(err)
	}
	if done, _ := m.Done("s2", now); done {
		t.Error("s2 counts as done after marking s1")
	}
}

func TestOldMarksExpireAndArePruned(t *testing.T) {
	m := NewMarks(t.TempDir())
	now := time.Now()
	old := now.Add(-DefaultMarkRetention - time.Hour)
	if err := m.Mark("old", old); err != nil {
		t.Fatal(err)
	}
	if done, _ := m.Done("old", now); done {
		t.Error("a mark older than the retention still counts")
	}
	stranger := filepath.Join(m.Dir, "notes.txt")
	if err := os.WriteFile(stranger, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(stranger, old, old)

	if err := m.Mark("new", now); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(m.Dir, MarkName("old"))); !os.IsNotExist(err) {
		t.Errorf("the old mark was not pruned: %v", err)
	}
	if _, err := os.Lstat(stranger); err != nil {
		t.Errorf("pruning removed a file it did not make: %v", err)
	}
	if done, _ := m.Done("new", now); !done {
		t.Error("the new mark does not count")
	}
}

func TestMarkNeverFollowsASymlink(t *testing.T) {
	root := t.TempDir()
	m := NewMarks(filepath.Join(root, "state"))
	if err := EnsureDir(m.Dir); err != nil {
		t.Fatal(err)
	}
	target := filepath.Join(root, "precious")
	if err := os.WriteFile(target, []byte("keep me\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(m.Dir, MarkName("s1"))
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if done, _ := m.Done("s1", time.Now()); done {
		t.Error("a planted symlink counts as a mark")
	}
	if err := m.Mark("s1", time.Now()); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "keep me\n" {
		t.Errorf("Mark wrote through the symlink: %q", b)
	}
	if st, err := os.Lstat(link); err != nil || !st.Mode().IsRegular() {
		t.Errorf("the mark is not a regular file: %v %v", st.Mode(), err)
	}
}

func TestStateDir(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/xdg/state")
	if d, _ := StateDir(); d != "/xdg/state/runnerlock" {
		t.Errorf("with XDG_STATE_HOME: %s", d)
	}
	t.Setenv("XDG_STATE_HOME", "relative/state")
	t.Setenv("HOME", "/home/dev")
	if d, _ := StateDir(); d != "/home/dev/.local/state/runnerlock" {
		t.Errorf("with a relative XDG_STATE_HOME: %s", d)
	}
	t.Setenv("XDG_STATE_HOME", "")
	if d, _ := StateDir(); d != "/home/dev/.local/state/runnerlock" {
		t.Errorf("without XDG_STATE_HOME: %s", d)
	}
}

func TestEnsureDirCreatesAPrivateFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "runnerlock")
	if err := EnsureDir(dir); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(dir)
	if err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("mode %v, %v; want 0700", st.Mode().Perm(), err)
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	if err := EnsureDir(file); err == nil {
		t.Error("EnsureDir accepted a file")
	}
}
