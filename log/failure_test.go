package log

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestFullDevice checks that a log whose writes fail with ENOSPC costs the
// caller one warning and nothing else.
func TestFullDevice(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full:", err)
	}

	for _, f := range []Format{Logfmt, JSON} {
		t.Run(f.String(), func(t *testing.T) {
			l, err := Open("/dev/full", f)
			mustDo(t, err)
			defer l.Close()
			var warn bytes.Buffer
			l.SetWarnOutput(&warn)

			l.Event("start", "run", "r1")
			l.With("run", "r1").Warn("timeout")
			l.Error("error", "err", "x")

			want := "runnerlock: warning: cannot write event log /dev/full: " +
				"no space left on device\n"
			if warn.String() != want {
				t.Errorf("warnings %q, want %q", warn.String(), want)
			}
			if n := l.Dropped(); n != 3 {
				t.Errorf("Dropped() = %d, want 3", n)
			}
		})
	}
}

// TestUnwritableDescriptor checks the same for a file open only for reading,
// whose writes fail with EBADF, and that children share the one warning.
func TestUnwritableDescriptor(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.log")
	mustDo(t, os.WriteFile(path, nil, 0o600))
	f, err := os.Open(path)
	mustDo(t, err)
	defer f.Close()

	l := New(f, Logfmt)
	var warn bytes.Buffer
	l.SetWarnOutput(&warn)
	child := l.With("run", "r1")
	child.Event("start")
	l.Event("done")
	child.Event("done")

	want := "runnerlock: warning: cannot write event log " + path + ": bad file descriptor\n"
	if warn.String() != want {
		t.Errorf("warnings %q, want %q", warn.String(), want)
	}
	if n := l.Dropped(); n != 3 {
		t.Errorf("Dropped() = %d, want 3", n)
	}
}

// TestEventsAfterClose checks that events after Close are dropped, counted
// and warned about once.
func TestEventsAfterClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.log")
	l, err := Open(path, Logfmt)
	mustDo(t, err)
	var warn bytes.Buffer
	l.SetWarnOutput(&warn)

	l.Event("first")
	mustDo(t, l.Close())
	mustDo(t, l.Close())
	l.Event("second")
	l.Event("third")

	if got := eventNames(t, path); !equalStrings(got, []string{"first"}) {
		t.Errorf("file holds %q, want [first]", got)
	}
	if n := l.Dropped(); n != 2 {
		t.Errorf("Dropped() = %d, want 2", n)
	}
	if strings.Count(warn.String(), "\n") != 1 || !strings.Contains(warn.String(), path) {
		t.Errorf("warnings %q, want one naming %s", warn.String(), path)
	}
}

// TestSymlinkRefused checks that a symbolic link put in place of the log is
// not followed, neither by Open nor when following rotation.
func TestSymlinkRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.log")
	target := filepath.Join(dir, "target")
	mustDo(t, os.WriteFile(target, nil, 0o600))

	l, err := Open(path, Logfmt)
	mustDo(t, err)
	defer l.Close()
	var warn bytes.Buffer
	l.SetWarnOutput(&warn)

	l.Event("first")
	mustDo(t, os.Remove(path))
	mustDo(t, os.Symlink(target, path))
	l.Event("second")
	l.Event("third")

	if data, _ := os.ReadFile(target); len(data) != 0 {
		t.Errorf("events written through the symbolic link: %q", data)
	}
	if n := l.Dropped(); n != 2 {
		t.Errorf("Dropped() = %d, want 2", n)
	}
	if strings.Count(warn.String(), "\n") != 1 || !strings.Contains(warn.String(), path) {
		t.Errorf("warnings %q, want one naming %s", warn.String(), path)
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name    string
		make    func(t *testing.T, dir string) string // returns the path
		asOwner bool                                  // the file's owner must open it
	}{
		{"missing directory", func(t *testing.T, dir string) string {
			return filepath.Join(dir, "no", "events.log")
		}, false},
		{"directory", func(t *testing.T, dir string) string {
			return dir
		}, false},
		{"symbolic link", func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "events.log")
			mustDo(t, os.WriteFile(path+".real", nil, 0o600))
			mustDo(t, os.Symlink(path+".real", path))
			return path
		}, false},
		{"read-only file", func(t *testing.T, dir string) string {
			path := filepath.Join(dir, "events.log")
			mustDo(t, os.WriteFile(path, nil, 0o600))
			mustDo(t, os.Chmod(path, 0o400))
			return path
		}, true},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.asOwner && os.Geteuid() == 0 {
				openAsNobody(t)
				return
			}
			openHelper(t, tt.make(t, t.TempDir()))
		})
	}
}

// openHelper checks that Open fails on path with an error naming it.
func openHelper(t *testing.T, path string) {
	l, err := Open(path, Logfmt)
	if err == nil {
		l.Close()
		t.Fatalf("Open(%s) succeeded", path)
	}
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path != path || !strings.Contains(err.Error(), path) {
		t.Errorf("error %q (%T) does not name %s", err, err, path)
	}
}

// openAsNobody checks, when the test runs as root (who may write any file),
// that Open fails on a file whose owner has only read permission, by running
// openHelper in a copy of the test binary as the user nobody (65534), the
// owner of the file.
func openAsNobody(t *testing.T) {
	const nobody = 65534
	dir, err := os.MkdirTemp("", "runnerlock-log-test-")
	mustDo(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	mustDo(t, os.Chmod(dir, 0o755))

	self, err := os.ReadFile(os.Args[0])
	mustDo(t, err)
	bin := filepath.Join(dir, "log.test")
	mustDo(t, os.WriteFile(bin, self, 0o755))

	path := filepath.Join(dir, "events.log")
	mustDo(t, os.WriteFile(path, nil, 0o400))
	mustDo(t, os.Chown(path, nobody, nobody))

	cmd := exec.Command(bin, "-test.run=^TestHelperProcess$", "-test.count=1", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), envHelper+"=open", envPath+"="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: nobody, Gid: nobody},
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestHelperProcess")) {
		t.Errorf("helper as nobody: %v\n%s", err, out)
	}
}

// TestOpenStandardError checks that "" and "-" mean standard error.
func TestOpenStandardError(t *testing.T) {
	for _, path := range []string{"", "-"} {
		stderr := captureStderr(t)
		l, err := Open(path, Logfmt)
		mustDo(t, err)
		l.Event("start")
		mustDo(t, l.Close())

		if got := eventNames(t, stderr); !equalStrings(got, []string{"start"}) {
			t.Errorf("Open(%q): standard error got %q, want [start]", path, got)
		}
	}
}

func TestOpenOrStderr(t *testing.T) {
	t.Run("unopenable path", func(t *testing.T) {
		stderr := captureStderr(t)
		path := filepath.Join(t.TempDir(), "no", "events.log")
		var warn bytes.Buffer

		l := OpenOrStderr(path, Logfmt, &warn)
		l.Event("start")
		l.Event("done")
		mustDo(t, l.Close())

		want := "runnerlock: warning: cannot open event log " + path +
			": no such file or directory; events go to standard error\n"
		if warn.String() != want {
			t.Errorf("warnings %q, want %q", warn.String(), want)
		}
		got := eventNames(t, stderr)
		if !equalStrings(got, []string{"start", "done"}) {
			t.Errorf("standard error got %q, want [start done]", got)
		}
	})

	t.Run("openable path", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "events.log")
		var warn bytes.Buffer

		l := OpenOrStderr(path, Logfmt, &warn)
		l.Event("start")
		mustDo(t, l.Close())

		if warn.Len() != 0 {
			t.Errorf("unexpected warning %q", warn.String())
		}
		if got := eventNames(t, path); !equalStrings(got, []string{"start"}) {
			t.Errorf("%s holds %q, want [start]", path, got)
		}
	})
}

// captureStderr points os.Stderr at a file for the rest of the test and
// returns the file's path.
func captureStderr(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stderr")
	f, err := os.Create(path)
	mustDo(t, err)
	saved := os.Stderr
	os.Stderr = f
	t.Cleanup(func() {
		os.Stderr = saved
		f.Close()
	})
	return path
}
