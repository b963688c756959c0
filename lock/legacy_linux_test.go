package lock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// legacySleeper starts a live process (sleep) that the test ends.
func legacySleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// legacyDeadPID is the pid of a process that has exited and been reaped.
func legacyDeadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

// legacyZombie starts a process and kills it without reaping it.
func legacyZombie(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Wait() })
	pid := cmd.Process.Pid
	if err := unix.Kill(pid, unix.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; {
		if _, state, err := procStat(pid); err == nil && state == 'Z' {
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed child never became a zombie")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// startedAt is when pid started, by /proc/PID/stat and btime.
func startedAt(t *testing.T, pid int) time.Time {
	t.Helper()
	st, _, err := procStat(pid)
	if err != nil {
		t.Fatal(err)
	}
	boot, err := bootTime()
	if err != nil {
		t.Fatal(err)
	}
	tck := uint64(clockTicks())
	return boot.Add(time.Duration(st/tck)*time.Second +
		time.Duration(st%tck)*time.Second/time.Duration(tck))
}

func setPIDMtime(t *testing.T, path string, when time.Time) {
	t.Helper()
	if err := os.Chtimes(filepath.Join(path, "pid"), when, when); err != nil {
		t.Fatal(err)
	}
}

func mustBoot(t *testing.T) time.Time {
	t.Helper()
	boot, err := bootTime()
	if err != nil {
		t.Fatal(err)
	}
	return boot
}

// TestLegacyDecisionTable covers every row of DESIGN.md's table, with real
// processes where a pid must name one.
// holdDirFlock takes the flock a migration takes on the legacy directory,
// as another migrating process would, until the test ends.
func holdDirFlock(t *testing.T, path string) int {
	t.Helper()
	dfd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(dfd) })
	if err := unix.Flock(dfd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	return dfd
}

func TestLegacyDecisionTable(t *testing.T) {
	type want struct {
		stale  bool
		reason string
		alive  bool
	}
	tests := []struct {
		name   string
		maxAge time.Duration
		setup  func(t *testing.T) string // returns the directory
		want   want
	}{
		{"live writer", 0, func(t *testing.T) string {
			return makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", legacySleeper(t).Process.Pid)))
		}, want{false, LegacyHolderAlive, true}},
		{"live writer of an old directory", 0, func(t *testing.T) string {
			p := makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", legacySleeper(t).Process.Pid)))
			if err := os.Chtimes(p, time.Now().Add(-48*time.Hour),
				time.Now().Add(-48*time.Hour)); err != nil {
				t.Fatal(err)
			}
			return p
		}, want{false, LegacyHolderAlive, true}},
		{"no such process", 0, func(t *testing.T) string {
			return makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", legacyDeadPID(t))))
		}, want{true, LegacyHolderDead, false}},
		{"zombie", 0, func(t *testing.T) string {
			return makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", legacyZombie(t))))
		}, want{true, LegacyHolderDead, false}},
		{"process started after the pid file was written", 0, func(t *testing.T) string {
			c := legacySleeper(t)
			written := startedAt(t, c.Process.Pid).Add(-time.Minute)
			if written.Before(mustBoot(t).Add(10 * time.Second)) {
				t.Skip("booted too recently to write a pid file a minute before a start")
			}
			p := makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", c.Process.Pid)))
			setPIDMtime(t, p, written)
			return p
		}, want{true, LegacyPIDReused, false}},
		{"pid file older than the boot", 0, func(t *testing.T) string {
			c := legacySleeper(t)
			p := makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", c.Process.Pid)))
			setPIDMtime(t, p, mustBoot(t).Add(-time.Hour))
			return p
		}, want{true, LegacyPIDReused, false}},
		{"dead pid in a pid file older than the boot", 0, func(t *testing.T) string {
			p := makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", legacyDeadPID(t))))
			setPIDMtime(t, p, mustBoot(t).Add(-time.Hour))
			return p
		}, want{true, LegacyHolderDead, false}},
		{"start and write within the clock's slack count as alive", 0, func(t *testing.T) string {
			c := legacySleeper(t)
			p := makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", c.Process.Pid)))
			setPIDMtime(t, p, startedAt(t, c.Process.Pid).Add(-legacyClockSlack/2))
			return p
		}, want{false, LegacyHolderAlive, true}},
		{"no pid file, young", 0, func(t *testing.T) string {
			return makeLegacyDir(t, nil)
		}, want{false, LegacyNoPIDYoung, false}},
		{"no pid file, older than the default max age", 0, func(t *testing.T) string {
			p := makeLegacyDir(t, nil)
			age(t, p, DefaultLegacyMaxAge+time.Minute)
			return p
		}, want{true, LegacyNoPIDAged, false}},
		{"no pid file, younger than the default max age", 0, func(t *testing.T) string {
			p := makeLegacyDir(t, nil)
			age(t, p, DefaultLegacyMaxAge-time.Minute)
			return p
		}, want{false, LegacyNoPIDYoung, false}},
		{"no pid file, older than a short max age", 2 * time.Minute, func(t *testing.T) string {
			p := makeLegacyDir(t, nil)
			age(t, p, 3*time.Minute)
			return p
		}, want{true, LegacyNoPIDAged, false}},
		{"garbage pid, young", 0, func(t *testing.T) string {
			return makeLegacyDir(t, ptr("not a pid\n"))
		}, want{false, LegacyNoPIDYoung, false}},
		{"garbage pid, aged", 0, func(t *testing.T) string {
			p := makeLegacyDir(t, ptr("not a pid\n"))
			age(t, p, 2*time.Hour)
			return p
		}, want{true, LegacyNoPIDAged, false}},
		{"garbage pid written lately in an old directory", 0, func(t *testing.T) string {
			p := makeLegacyDir(t, ptr("not a pid\n"))
			age(t, p, 2*time.Hour)
			setPIDMtime(t, p, time.Now())
			return p
		}, want{false, LegacyNoPIDYoung, false}},
		{"anything besides pid", 0, func(t *testing.T) string {
			p := makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", legacyDeadPID(t))))
			writeFile(t, filepath.Join(p, "extra"), "")
			return p
		}, want{false, LegacyUnexpected, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.setup(t)
			maxAge := tt.maxAge
			if maxAge == 0 {
				maxAge = DefaultLegacyMaxAge
			}
			s, err := describeLegacy(path, maxAge)
			if err != nil {
				t.Fatal(err)
			}
			d := s.Decision
			if d.Stale != tt.want.stale || d.Reason != tt.want.reason || s.Alive != tt.want.alive {
				t.Fatalf("decision %+v alive=%v; want stale=%v reason=%s alive=%v", d, s.Alive,
					tt.want.stale, tt.want.reason, tt.want.alive)
			}
		})
	}
}

// TestBadPIDFiles: a pid file that names no process we could judge is
// treated as no pid at all (busy while young, stale once aged), whatever is
// wrong with it.
func TestBadPIDFiles(t *testing.T) {
	max := pidMax()
	bad := map[string]string{
		"empty":           "",
		"whitespace":      " \n\t\n",
		"garbage":         "hello world\n",
		"binary":          "\x00\x01\x02",
		"zero":            "0\n",
		"negative":        "-1\n",
		"over pid_max":    strconv.Itoa(max) + "\n",
		"far over":        "18446744073709551617\n",
		"our own pid":     strconv.Itoa(os.Getpid()) + "\n",
		"huge":            strings.Repeat("1", 1<<20),
		"two lines":       "12\n34\n",
		"float":           "12.5\n",
		"hex":             "0x10\n",
		"leading zeros":   "00012\n",
		"pid and garbage": "12 and more\n",
	}
	for name, content := range bad {
		t.Run(name, func(t *testing.T) {
			path := makeLegacyDir(t, ptr(content))
			s := DescribeLegacy(path)
			if s.PID != 0 || s.Decision.Reason != LegacyNoPIDYoung || s.Decision.Detail == "" {
				t.Fatalf("young: %+v; want no pid, %s, with a detail", s, LegacyNoPIDYoung)
			}
			age(t, path, 2*time.Hour)
			s = DescribeLegacy(path)
			if !s.Decision.Stale || s.Decision.Reason != LegacyNoPIDAged {
				t.Fatalf("aged: %+v; want stale, %s", s, LegacyNoPIDAged)
			}
		})
	}
}

// TestLegacyOtherUsersHolderCountsAsAlive judges, as user nobody, a pid file
// that names one of our (root's) processes: kill(pid, 0) says EPERM, which
// means alive, and the start-time check still applies.
func TestLegacyOtherUsersHolderCountsAsAlive(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run the judge as another user")
	}
	// A directory that nobody can enter, holding a copy of the test binary
	// (the build's own directory is private).
	dir, err := os.MkdirTemp("", "legacy-eperm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "lock.test")
	copyFile(t, os.Args[0], bin, 0o755)

	judge := func(t *testing.T, path string) string {
		t.Helper()
		cmd := exec.Command(bin, "-test.run=^TestLegacyJudgeHelper$", "-test.v")
		cmd.Env = append(os.Environ(), "RUNNERLOCK_LEGACY_JUDGE="+path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
			Uid: 65534, Gid: 65534, Groups: []uint32{}}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("judge as nobody: %v\n%s", err, out)
		}
		for line := range strings.SplitSeq(string(out), "\n") {
			if v, ok := strings.CutPrefix(line, "decision: "); ok {
				return v
			}
		}
		t.Fatalf("no decision from the helper:\n%s", out)
		return ""
	}
	mk := func(t *testing.T, pid int, written time.Time) string {
		p, err := os.MkdirTemp(dir, "runner.lock.")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(p, "pid"), fmt.Sprintf("%d\n", pid))
		if !written.IsZero() {
			setPIDMtime(t, p, written)
		}
		return p
	}

	root := legacySleeper(t).Process.Pid
	if err := unix.Kill(root, 0); err != nil {
		t.Fatal(err)
	}
	if got := judge(t, mk(t, root, time.Time{})); got != "busy "+LegacyHolderAlive {
		t.Errorf("root's live process, as nobody: %q; want busy %s", got, LegacyHolderAlive)
	}
	written := startedAt(t, root).Add(-time.Minute)
	if written.After(mustBoot(t).Add(10 * time.Second)) {
		if got := judge(t, mk(t, root, written)); got != "stale "+LegacyPIDReused {
			t.Errorf("root's process started after the pid file, as nobody: %q; want "+
				"stale %s", got, LegacyPIDReused)
		}
	}
	if got := judge(t, mk(t, legacyDeadPID(t), time.Time{})); got != "stale "+LegacyHolderDead {
		t.Errorf("dead pid, as nobody: %q; want stale %s", got, LegacyHolderDead)
	}
	// A pid file that nobody may read names a holder we cannot judge: busy,
	// however old the directory.
	p := mk(t, legacyDeadPID(t), time.Time{})
	if err := os.Chmod(filepath.Join(p, "pid"), 0o600); err != nil {
		t.Fatal(err)
	}
	age(t, p, 2*DefaultLegacyMaxAge)
	if got := judge(t, p); got != "busy "+LegacyPIDUnreadable {
		t.Errorf("unreadable pid file, as nobody: %q; want busy %s", got, LegacyPIDUnreadable)
	}
}

// TestLegacyJudgeHelper is the judge that TestLegacyOtherUsersHolder... runs
// as another user.
func TestLegacyJudgeHelper(t *testing.T) {
	path := os.Getenv("RUNNERLOCK_LEGACY_JUDGE")
	if path == "" {
		t.Skip("a helper for TestLegacyOtherUsersHolderCountsAsAlive")
	}
	if err := unix.Kill(os.Getppid(), 0); !errors.Is(err, unix.EPERM) {
		t.Fatalf("kill(parent, 0) = %v; want EPERM: the helper is not another user", err)
	}
	d := DescribeLegacy(path).Decision
	verdict := "busy"
	if d.Stale {
		verdict = "stale"
	}
	fmt.Printf("decision: %s %s\n", verdict, d.Reason)
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// checkMigrated says that h holds a private regular lock file at path, that
// the legacy directory is gone, and that nothing was left beside it.
func checkMigrated(t *testing.T, h *Holder, path string, oldIno uint64) {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o600 || st.Uid != uint32(os.Geteuid()) ||
		st.Nlink != 1 {
		t.Fatalf("path is %v uid %d nlink %d; want a regular 0600 file of ours", fi.Mode(), st.Uid,
			st.Nlink)
	}
	if st.Ino == oldIno {
		t.Fatal("path still names the legacy directory's inode")
	}
	var fst unix.Stat_t
	if err := unix.Fstat(h.Fd(), &fst); err != nil {
		t.Fatal(err)
	}
	if fst.Ino != st.Ino || fst.Dev != st.Dev {
		t.Fatal("the holder's descriptor is not the file at path")
	}
	if still, err := h.StillHeld(); !still || err != nil {
		t.Fatalf("StillHeld = %v, %v", still, err)
	}
	// The kernel says it is locked: another description cannot lock it.
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Fatalf("a second flock = %v; want EWOULDBLOCK", err)
	}
	if got := siblings(t, path); len(got) != 0 {
		t.Fatalf("left beside the lock file: %v", got)
	}
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestAcquireMigratesStaleDirectory(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(t *testing.T) (path string, pid int)
		reason string
	}{
		{LegacyHolderDead, func(t *testing.T) (string, int) {
			pid := legacyDeadPID(t)
			return makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", pid))), pid
		}, LegacyHolderDead},
		{LegacyPIDReused, func(t *testing.T) (string, int) {
			pid := legacySleeper(t).Process.Pid
			p := makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", pid)))
			setPIDMtime(t, p, mustBoot(t).Add(-time.Hour))
			return p, pid
		}, LegacyPIDReused},
		{LegacyNoPIDAged, func(t *testing.T) (string, int) {
			p := makeLegacyDir(t, nil)
			age(t, p, 2*time.Hour)
			return p, 0
		}, LegacyNoPIDAged},
		{"garbage pid, aged", func(t *testing.T) (string, int) {
			p := makeLegacyDir(t, ptr("garbage"))
			age(t, p, 2*time.Hour)
			return p, 0
		}, LegacyNoPIDAged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			withSettle(t, 0)
			path, pid := tt.setup(t)
			old := inode(t, path)

			h, err := Acquire(context.Background(), path, Options{})
			if err != nil {
				t.Fatalf("Acquire: %v", err)
			}
			defer h.Release()
			if h.Migrated == nil || h.Migrated.Reason != tt.reason || h.Migrated.OldPID != pid ||
				h.Migrated.Leftover != "" {
				t.Fatalf("Migrated = %+v; want reason %s, old pid %d", h.Migrated, tt.reason, pid)
			}
			checkMigrated(t, h, path, old)

			// It is a lock file like any other now.
			h.Release()
			h2, err := Acquire(context.Background(), path, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if h2.Migrated != nil {
				t.Fatal("a lock file was migrated again")
			}
			h2.Release()
		})
	}
}

func TestAcquireLegacyBusy(t *testing.T) {
	withSettle(t, 0)
	live := legacySleeper(t).Process.Pid
	for _, tt := range []struct {
		name   string
		pid    *string
		want   int
		reason string
	}{
		{"live holder", ptr(fmt.Sprintf("%d\n", live)), live, LegacyHolderAlive},
		{"young, no pid", nil, 0, LegacyNoPIDYoung},
		{"young, empty pid", ptr(""), 0, LegacyNoPIDYoung},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := makeLegacyDir(t, tt.pid)
			before := snapshot(t, filepath.Dir(path))
			h, err := Acquire(context.Background(), path, Options{})
			if h != nil {
				h.Release()
				t.Fatal("Acquire took a live legacy lock")
			}
			var le *LegacyBusyError
			if !errors.Is(err, ErrBusy) || !errors.As(err, &le) {
				t.Fatalf("Acquire = %v; want a *LegacyBusyError wrapping ErrBusy", err)
			}
			if le.PID != tt.want || le.Reason != tt.reason || le.Path != path {
				t.Fatalf("busy %+v; want pid %d reason %s", le, tt.want, tt.reason)
			}
			before.mustEqual(t, snapshot(t, filepath.Dir(path)))
		})
	}
}

// TestMigrationSwapsBackWhenReplaced: a legacy hook removes the stale
// directory and makes its own between our judgement and our exchange. The
// exchange swaps out that fresh directory: it must be swapped back, intact,
// and the path judged again.
func TestMigrationSwapsBackWhenReplaced(t *testing.T) {
	withSettle(t, 0)
	path := makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", legacyDeadPID(t))))
	live := legacySleeper(t).Process.Pid
	var fresh uint64
	calls := 0
	testHookBeforeExchange = func() {
		calls++
		if calls > 1 {
			return
		}
		if err := os.RemoveAll(path); err != nil {
			t.Error(err)
		}
		if err := os.Mkdir(path, 0o755); err != nil {
			t.Error(err)
		}
		writeFile(t, filepath.Join(path, "pid"), fmt.Sprintf("%d\n", live))
		fresh = inode(t, path)
	}
	t.Cleanup(func() { testHookBeforeExchange = nil })

	h, err := Acquire(context.Background(), path, Options{})
	if h != nil {
		h.Release()
		t.Fatal("Acquire took the lock over a fresh legacy directory")
	}
	var le *LegacyBusyError
	if !errors.As(err, &le) || le.PID != live {
		t.Fatalf("Acquire = %v; want busy with the fresh holder %d", err, live)
	}
	if calls != 1 {
		t.Fatalf("exchanged %d times; want once", calls)
	}
	if got := inode(t, path); got != fresh {
		t.Fatal("path no longer names the fresh legacy directory")
	}
	if b, err := os.ReadFile(filepath.Join(path, "pid")); err != nil ||
		string(b) != fmt.Sprintf("%d\n", live) {
		t.Fatalf("the fresh directory's pid file: %q, %v", b, err)
	}
	if got := siblings(t, path); len(got) != 0 {
		t.Fatalf("left beside the path: %v", got)
	}
}

// TestMigrationDecidesAgainAfterSwapBack: the directory that replaced the
// judged one is stale too; it is judged on its own facts and migrated.
func TestMigrationDecidesAgainAfterSwapBack(t *testing.T) {
	withSettle(t, 0)
	path := makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", legacyDeadPID(t))))
	second := legacyDeadPID(t)
	calls := 0
	testHookBeforeExchange = func() {
		calls++
		if calls > 1 {
			return
		}
		os.RemoveAll(path)
		if err := os.Mkdir(path, 0o755); err != nil {
			t.Error(err)
		}
		writeFile(t, filepath.Join(path, "pid"), fmt.Sprintf("%d\n", second))
	}
	t.Cleanup(func() { testHookBeforeExchange = nil })

	h, err := Acquire(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	if calls != 2 || h.Migrated == nil || h.Migrated.OldPID != second {
		t.Fatalf("calls %d, Migrated %+v; want two exchanges and old pid %d", calls, h.Migrated,
			second)
	}
	checkMigrated(t, h, path, 0)
}

// TestMigrationRefusedWithoutExchange: a filesystem without RENAME_EXCHANGE
// is refused, with the temporary file removed and the directory left as it
// was; nothing falls back to rename or rmdir.
func TestMigrationRefusedWithoutExchange(t *testing.T) {
	withSettle(t, 0)
	for _, errno := range []unix.Errno{unix.EINVAL, unix.ENOSYS, unix.EOPNOTSUPP} {
		t.Run(errno.Error(), func(t *testing.T) {
			old := renameExchange
			renameExchange = func(int, string, int, string) error { return errno }
			t.Cleanup(func() { renameExchange = old })

			path := makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", legacyDeadPID(t))))
			before := snapshot(t, filepath.Dir(path))
			h, err := Acquire(context.Background(), path, Options{})
			if h != nil {
				h.Release()
			}
			var ue *UnusableError
			if !errors.As(err, &ue) || !errors.Is(err, errno) ||
				!strings.Contains(ue.Reason, "RENAME_EXCHANGE") {
				t.Fatalf("Acquire = %v; want an *UnusableError about RENAME_EXCHANGE", err)
			}
			before.mustEqual(t, snapshot(t, filepath.Dir(path)))
		})
	}
}

// TestMigrationIgnoresLeftoverTempFiles: what a crashed migration left
// beside the path neither blocks a new one nor is touched by it.
func TestMigrationIgnoresLeftoverTempFiles(t *testing.T) {
	withSettle(t, 0)
	path := makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", legacyDeadPID(t))))
	leftFile := path + ".migrate-" + strconv.Itoa(os.Getpid()) + "-000000000000"
	leftDir := path + ".migrate-1-ffffffffffff"
	writeFile(t, leftFile, "")
	if err := os.Mkdir(leftDir, 0o755); err != nil {
		t.Fatal(err)
	}
	h, err := Acquire(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	if h.Migrated == nil {
		t.Fatal("not migrated")
	}
	for _, p := range []string{leftFile, leftDir} {
		if _, err := os.Lstat(p); err != nil {
			t.Fatalf("a leftover was touched: %v", err)
		}
	}
	if got := siblings(t, path); len(got) != 2 {
		t.Fatalf("beside the path: %v; want only the two leftovers", got)
	}
}

// TestSettleNoticesStolenLockFile: a legacy stealer that judged the old
// directory dead removes our fresh lock file and makes its own directory
// just after the migration. The holder must not be handed out.
func TestSettleNoticesStolenLockFile(t *testing.T) {
	withSettle(t, 20*time.Millisecond)
	path := makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", legacyDeadPID(t))))
	stealer := legacySleeper(t).Process.Pid
	testHookAfterMigrate = func() {
		if err := os.Remove(path); err != nil {
			t.Error(err)
		}
		if err := os.Mkdir(path, 0o755); err != nil {
			t.Error(err)
		}
		writeFile(t, filepath.Join(path, "pid"), fmt.Sprintf("%d\n", stealer))
	}
	t.Cleanup(func() { testHookAfterMigrate = nil })

	fds := openFds(t)
	h, err := Acquire(context.Background(), path, Options{})
	if h != nil {
		h.Release()
		t.Fatal("Acquire handed out a lock file that is no longer at the path")
	}
	var le *LegacyBusyError
	if !errors.As(err, &le) || le.PID != stealer {
		t.Fatalf("Acquire = %v; want busy with the stealer %d", err, stealer)
	}
	if n := openFds(t); n != fds {
		t.Fatalf("%d descriptors open, %d before: the stolen file was not let go", n, fds)
	}
}

func openFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestConcurrentMigrationsNeverBoth: many takers of one stale directory at
// once; the directory's flock lets exactly one migrate it.
func TestConcurrentMigrationsNeverBoth(t *testing.T) {
	withSettle(t, 0)
	for round := range 20 {
		path := makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", legacyDeadPID(t))))
		const n = 8
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			holders  []*Holder
			migrated int
			other    []error
		)
		start := make(chan struct{})
		for range n {
			wg.Go(func() {
				<-start
				h, err := Acquire(context.Background(), path, Options{})
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					holders = append(holders, h)
					if h.Migrated != nil {
						migrated++
					}
				case !errors.Is(err, ErrBusy):
					other = append(other, err)
				}
			})
		}
		close(start)
		wg.Wait()
		for _, h := range holders {
			h.Release()
		}
		if len(holders) != 1 || migrated != 1 || len(other) > 0 {
			t.Fatalf("round %d: %d holders, %d migrations, errors %v; want one of each",
				round, len(holders), migrated, other)
		}
		if got := siblings(t, path); len(got) != 0 {
			t.Fatalf("round %d: left beside the path: %v", round, got)
		}
	}
}

func TestAcquireWaitsForLegacyHolder(t *testing.T) {
	withSettle(t, 0)
	holder := legacySleeper(t)
	path := makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", holder.Process.Pid)))

	type result struct {
		h   *Holder
		err error
		at  time.Time
	}
	done := make(chan result, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	go func() {
		h, err := Acquire(ctx, path, Options{Wait: true})
		done <- result{h, err, time.Now()}
	}()

	select {
	case r := <-done:
		t.Fatalf("Acquire returned while the holder lives: %v", r.err)
	case <-time.After(300 * time.Millisecond):
	}
	killed := time.Now()
	if err := holder.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.h.Release()
	if r.h.Migrated == nil || r.h.Migrated.Reason != LegacyHolderDead {
		t.Fatalf("Migrated = %+v; want %s", r.h.Migrated, LegacyHolderDead)
	}
	if d := r.at.Sub(killed); d > time.Second {
		t.Fatalf("Acquire returned %v after the holder died; want at once", d)
	}
	t.Logf("took the lock %v after the legacy holder was killed", r.at.Sub(killed))
}

func TestAcquireWaitsForYoungDirectoryToAge(t *testing.T) {
	withSettle(t, 0)
	path := makeLegacyDir(t, nil)
	const maxAge = 400 * time.Millisecond
	made := time.Unix(0, 0)
	if fi, err := os.Stat(path); err == nil {
		made = fi.ModTime()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h, err := Acquire(ctx, path, Options{Wait: true, LegacyMaxAge: maxAge})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	took := time.Since(made)
	if h.Migrated == nil || h.Migrated.Reason != LegacyNoPIDAged {
		t.Fatalf("Migrated = %+v; want %s", h.Migrated, LegacyNoPIDAged)
	}
	if took < maxAge || took > maxAge+time.Second {
		t.Fatalf("migrated %v after the directory was made; want soon after %v", took, maxAge)
	}
}

// TestAcquireWaitWakesOnRemoval: the directory goes while its holder lives
// (the holder's trap, or an operator): the waiter takes a fresh lock file.
func TestAcquireWaitWakesOnRemoval(t *testing.T) {
	withSettle(t, 0)
	holder := legacySleeper(t).Process.Pid
	path := makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", holder)))
	done := make(chan error, 1)
	var got *Holder
	go func() {
		h, err := Acquire(context.Background(), path, Options{Wait: true})
		got = h
		done <- err
	}()
	time.Sleep(200 * time.Millisecond)
	removed := time.Now()
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the waiter did not wake when the directory was removed")
	}
	defer got.Release()
	if got.Migrated != nil {
		t.Fatal("a removed directory was migrated")
	}
	t.Logf("took the lock %v after the directory was removed", time.Since(removed))
}

func TestAcquireLegacyWaitEndsWithContext(t *testing.T) {
	withSettle(t, 0)
	holder := legacySleeper(t).Process.Pid
	path := makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", holder)))
	before := snapshot(t, filepath.Dir(path))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	h, err := Acquire(ctx, path, Options{Wait: true})
	if h != nil {
		h.Release()
		t.Fatal("took a live legacy lock")
	}
	var le *LegacyBusyError
	if !errors.As(err, &le) || !errors.Is(err, ErrBusy) ||
		!errors.Is(err, context.DeadlineExceeded) || le.PID != holder {
		t.Fatalf("Acquire = %v; want busy with pid %d and the deadline", err, holder)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("returned %v after a 200ms deadline", d)
	}
	before.mustEqual(t, snapshot(t, filepath.Dir(path)))
}

// TestDescribeLegacyTakesNoLockAndChangesNothing: while we hold the
// directory's flock, DescribeLegacy still answers, and changes nothing.
func TestDescribeLegacyTakesNoLockAndChangesNothing(t *testing.T) {
	dead := legacyDeadPID(t)
	path := makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", dead)))
	age(t, path, time.Minute)
	before := snapshot(t, filepath.Dir(path))

	holdDirFlock(t, path)
	done := make(chan LegacyStatus, 1)
	go func() { done <- DescribeLegacy(path) }()
	var s LegacyStatus
	select {
	case s = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("DescribeLegacy blocked on the directory's flock")
	}
	if s.PID != dead || s.Alive || !s.Decision.Stale || s.Decision.Reason != LegacyHolderDead ||
		s.Age < 50*time.Second {
		t.Fatalf("DescribeLegacy = %+v; want dead pid %d, stale, about a minute old", s, dead)
	}
	before.mustEqual(t, snapshot(t, filepath.Dir(path)))

	st, err := Describe(path)
	if err != nil || st.State != Legacy || st.Legacy == nil || st.Legacy.PID != dead {
		t.Fatalf("Describe = %+v, %v; want legacy with pid %d", st, err, dead)
	}
	before.mustEqual(t, snapshot(t, filepath.Dir(path)))
}

func TestMigrateLegacy(t *testing.T) {
	withSettle(t, 0)
	ctx := context.Background()
	t.Run("free", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "none")
		res, err := MigrateLegacy(ctx, path, MigrateOptions{})
		if err != nil || res.Outcome != OutcomeFree {
			t.Fatalf("= %+v, %v; want %s", res, err, OutcomeFree)
		}
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Fatal("migrate made a file where there was none")
		}
	})
	t.Run("lock file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "runner.lock")
		mustAcquireLegacyTest(t, path).Release()
		res, err := MigrateLegacy(ctx, path, MigrateOptions{})
		if err != nil || res.Outcome != OutcomeLockFile {
			t.Fatalf("= %+v, %v; want %s", res, err, OutcomeLockFile)
		}
	})
	t.Run("symlink", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, "runner.lock")
		if err := os.Symlink(dir, path); err != nil {
			t.Fatal(err)
		}
		var ue *UnusableError
		if _, err := MigrateLegacy(ctx, path, MigrateOptions{}); !errors.As(err, &ue) {
			t.Fatalf("= %v; want an *UnusableError", err)
		}
	})
	t.Run("stale", func(t *testing.T) {
		dead := legacyDeadPID(t)
		path := makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", dead)))
		res, err := MigrateLegacy(ctx, path, MigrateOptions{})
		if err != nil || res.Outcome != OutcomeMigrated || res.PID != dead ||
			res.Reason != LegacyHolderDead {
			t.Fatalf("= %+v, %v; want migrated, holder-dead, pid %d", res, err, dead)
		}
		// Left a free lock file.
		h, err := Acquire(ctx, path, Options{})
		if err != nil {
			t.Fatalf("the migrated lock file is not free: %v", err)
		}
		h.Release()
	})
	t.Run("busy", func(t *testing.T) {
		live := legacySleeper(t).Process.Pid
		path := makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", live)))
		before := snapshot(t, filepath.Dir(path))
		res, err := MigrateLegacy(ctx, path, MigrateOptions{})
		if err != nil || res.Outcome != OutcomeBusy || res.PID != live {
			t.Fatalf("= %+v, %v; want busy with pid %d", res, err, live)
		}
		before.mustEqual(t, snapshot(t, filepath.Dir(path)))
	})
	t.Run("dry run changes nothing and takes no lock", func(t *testing.T) {
		dead := legacyDeadPID(t)
		path := makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", dead)))
		before := snapshot(t, filepath.Dir(path))
		holdDirFlock(t, path)
		res, err := MigrateLegacy(ctx, path, MigrateOptions{DryRun: true})
		if err != nil || res.Outcome != OutcomeWouldMigrate || res.PID != dead ||
			res.Reason != LegacyHolderDead {
			t.Fatalf("= %+v, %v; want would-migrate, holder-dead, pid %d", res, err, dead)
		}
		before.mustEqual(t, snapshot(t, filepath.Dir(path)))
	})
	t.Run("wait", func(t *testing.T) {
		holder := legacySleeper(t)
		path := makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", holder.Process.Pid)))
		time.AfterFunc(200*time.Millisecond, func() { _ = holder.Process.Kill() })
		wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		res, err := MigrateLegacy(wctx, path, MigrateOptions{Wait: true})
		if err != nil || res.Outcome != OutcomeMigrated || res.Reason != LegacyHolderDead {
			t.Fatalf("= %+v, %v; want migrated, holder-dead", res, err)
		}
	})
	t.Run("wait ends with its context", func(t *testing.T) {
		live := legacySleeper(t).Process.Pid
		path := makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", live)))
		wctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		res, err := MigrateLegacy(wctx, path, MigrateOptions{Wait: true})
		if err != nil || res.Outcome != OutcomeBusy || res.PID != live {
			t.Fatalf("= %+v, %v; want busy with pid %d", res, err, live)
		}
	})
}

// TestDirectoryFlockSerializesMigrations: while another runnerlock holds the
// legacy directory's flock (judging or migrating it), Acquire neither
// judges nor migrates it: without Wait it is busy, with Wait it sleeps until
// the flock is let go.
func TestDirectoryFlockSerializesMigrations(t *testing.T) {
	withSettle(t, 0)
	path := makeLegacyDir(t, ptr(fmt.Sprintf("%d\n", legacyDeadPID(t))))
	before := snapshot(t, filepath.Dir(path))
	dfd := holdDirFlock(t, path)

	h, err := Acquire(context.Background(), path, Options{})
	if h != nil {
		h.Release()
		t.Fatal("migrated a directory whose flock another process holds")
	}
	var le *LegacyBusyError
	if !errors.As(err, &le) {
		t.Fatalf("Acquire = %v; want a *LegacyBusyError", err)
	}
	before.mustEqual(t, snapshot(t, filepath.Dir(path)))

	done := make(chan *Holder, 1)
	go func() {
		h, err := Acquire(context.Background(), path, Options{Wait: true})
		if err != nil {
			t.Error(err)
		}
		done <- h
	}()
	select {
	case <-done:
		t.Fatal("the waiter did not wait for the directory's flock")
	case <-time.After(200 * time.Millisecond):
	}
	before.mustEqual(t, snapshot(t, filepath.Dir(path)))
	unix.Flock(dfd, unix.LOCK_UN)
	select {
	case h := <-done:
		if h == nil || h.Migrated == nil {
			t.Fatalf("holder %+v; want a migration", h)
		}
		h.Release()
	case <-time.After(5 * time.Second):
		t.Fatal("the waiter did not wake when the flock was let go")
	}
}
