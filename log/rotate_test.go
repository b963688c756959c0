package log

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// eventNames returns the event names of the logfmt lines in the file at
// path, or nil if there is no file.
func eventNames(t *testing.T, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\S+ (\S+)`).FindAllSubmatch(data, -1) {
		names = append(names, string(m[1]))
	}
	return names
}

func TestRotation(t *testing.T) {
	tests := []struct {
		name   string
		rotate func(t *testing.T, path string)
		want   map[string][]string // file name in the directory → its events
	}{
		{"renamed away", func(t *testing.T, path string) {
			mustDo(t, os.Rename(path, path+".1"))
		}, map[string][]string{"events.log": {"second"}, "events.log.1": {"first"}}},
		{"deleted", func(t *testing.T, path string) {
			mustDo(t, os.Remove(path))
		}, map[string][]string{"events.log": {"second"}}},
		{"replaced by another file", func(t *testing.T, path string) {
			mustDo(t, os.WriteFile(path+".new", []byte("x other\n"), 0o600))
			mustDo(t, os.Rename(path+".new", path))
		}, map[string][]string{"events.log": {"other", "second"}}},
		{"copied and truncated", func(t *testing.T, path string) {
			data, err := os.ReadFile(path)
			mustDo(t, err)
			mustDo(t, os.WriteFile(path+".1", data, 0o600))
			mustDo(t, os.Truncate(path, 0))
		}, map[string][]string{"events.log": {"second"}, "events.log.1": {"first"}}},
		{"untouched", func(t *testing.T, path string) {},
			map[string][]string{"events.log": {"first", "second"}}},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "events.log")
			l, err := Open(path, Logfmt)
			mustDo(t, err)
			defer l.Close()

			l.Event("first")
			tt.rotate(t, path)
			l.Event("second")

			entries, err := os.ReadDir(dir)
			mustDo(t, err)
			if len(entries) != len(tt.want) {
				t.Errorf("directory holds %v, want %d files",
					entries, len(tt.want))
			}
			for name, want := range tt.want {
				got := eventNames(t, filepath.Join(dir, name))
				if !equalStrings(got, want) {
					t.Errorf("%s holds %q, want %q", name, got, want)
				}
			}
			if n := l.Dropped(); n != 0 {
				t.Errorf("Dropped() = %d, want 0", n)
			}
		})
	}
}

// TestRotationReopenMode checks that the file made by reopening has the
// same mode as one made by Open.
func TestRotationReopenMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.log")
	l, err := Open(path, JSON)
	mustDo(t, err)
	defer l.Close()

	l.Event("first")
	mustDo(t, os.Remove(path))
	l.Event("second")

	fi, err := os.Lstat(path)
	mustDo(t, err)
	if mode := fi.Mode(); mode != 0o600 {
		t.Errorf("reopened file has mode %v, want -rw-------", mode)
	}
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
