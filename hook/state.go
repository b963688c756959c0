package hook

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// DefaultMarkRetention is how long a session's done mark counts: a Stop
// hook fires at every turn of a session, for as long as it lives.
const DefaultMarkRetention = 30 * 24 * time.Hour

// StateDir returns the state directory: $XDG_STATE_HOME/runnerlock, else
// ~/.local/state/runnerlock. A relative XDG_STATE_HOME is ignored, as the
// XDG Base Directory specification asks. It does not create the directory.
func StateDir() (string, error) {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "runnerlock"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no state directory: %w", err)
	}
	return filepath.Join(home, ".local", "state", "runnerlock"), nil
}

// EnsureDir creates dir (and its parents) with mode 0700 if it does not
// exist, and checks that it is a directory of ours: the marks and logs in
// it must not be somebody else's to plant or read.
func EnsureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return &fs.PathError{Op: "state directory", Path: dir, Err: errors.New("not a directory")}
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
		return &fs.PathError{Op: "state directory", Path: dir,
			Err: fmt.Errorf("owned by uid %d, not by you", sys.Uid)}
	}
	return nil
}

// Marks are the done marks of --once: one empty-ish file per session whose
// run ended with done, in a folder of the state directory. A mark's name is
// the SHA-256 of the session id in hex, so that no session id (`../x`, a
// slash, a huge string) can name another path, be too long for a file
// name, or collide with another session's mark in practice.
type Marks struct {
	Dir       string        // the folder of the marks, e.g. StateDir()/done
	Retention time.Duration // 0: DefaultMarkRetention
}

// NewMarks returns the marks kept under the state directory stateDir.
func NewMarks(stateDir string) Marks {
	return Marks{Dir: filepath.Join(stateDir, "done")}
}

// MarkName returns the file name of session's mark.
func MarkName(session string) string {
	sum := sha256.Sum256([]byte(session))
	return hex.EncodeToString(sum[:])
}

func (m Marks) retention() time.Duration {
	if m.Retention > 0 {
		return m.Retention
	}
	return DefaultMarkRetention
}

// Done reports whether session has a mark younger than the retention. A
// mark that is not a regular file (a symlink planted there) does not count.
func (m Marks) Done(session string, now time.Time) (bool, error) {
	st, err := os.Lstat(filepath.Join(m.Dir, MarkName(session)))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return st.Mode().IsRegular() && now.Sub(st.ModTime()) < m.retention(), nil
}

// Mark records that session's run ended with done, then prunes the marks
// older than the retention. The mark is written under a temporary name and
// renamed into place, so that nothing at the mark's name is ever followed
// or written through; it holds the session id, for the curious.
func (m Marks) Mark(session string, now time.Time) error {
	if err := EnsureDir(m.Dir); err != nil {
		return err
	}
	f, err := os.CreateTemp(m.Dir, ".mark-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, werr := f.WriteString(session + "\n")
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Chtimes(tmp, now, now)
	}
	if werr == nil {
		werr = os.Rename(tmp, filepath.Join(m.Dir, MarkName(session)))
	}
	if werr != nil {
		_ = os.Remove(tmp)
		return werr
	}
	m.Prune(now)
	return nil
}

// Prune removes the marks older than the retention, and temporary files
// that a killed writer left, and nothing else: only names that Mark makes
// are considered, and a name is removed, never followed.
func (m Marks) Prune(now time.Time) (removed int) {
	ents, err := os.ReadDir(m.Dir)
	if err != nil {
		return 0
	}
	for _, e := range ents {
		name := e.Name()
		if !isMarkName(name) && !isTempName(name) {
			continue
		}
		age := m.retention()
		if isTempName(name) {
			age = time.Hour // a writer takes microseconds; this one was killed
		}
		info, err := e.Info()
		if err != nil || now.Sub(info.ModTime()) < age {
			continue
		}
		if os.Remove(filepath.Join(m.Dir, name)) == nil {
			removed++
		}
	}
	return removed
}

func isMarkName(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

func isTempName(s string) bool {
	return len(s) > len(".mark-") && s[:len(".mark-")] == ".mark-"
}
