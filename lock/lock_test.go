//go:build linux

package lock

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// helperEnv makes the test binary act as a lock-taking process for tests
// that need a real second process.
const helperEnv = "RUNNERLOCK_LOCK_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperMain(mode, os.Getenv("LOCK_PATH")))
	}
	os.Exit(m.Run())
}

// helperMain: "hold" takes the lock and sleeps until killed; "wait" waits
// for the lock (no deadline) and prints "got" when it has it.
func helperMain(mode, path string) int {
	switch mode {
	case "hold":
		h, err := Acquire(context.Background(), path, Options{})
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		fmt.Println("held")
		time.Sleep(time.Hour)
		_ = h.Release()
	case "wait":
		fmt.Println("waiting")
		h, err := Acquire(context.Background(), path, Options{Wait: true})
		if err != nil {
			fmt.Println("error:", err)
			return 1
		}
		fmt.Println("got")
		_ = h.Release()
	}
	return 0
}

// startHelper starts the test binary as a helper process and returns it
// once it has printed its first line.
func startHelper(t *testing.T, mode, path string) (*exec.Cmd, *lineReader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "LOCK_PATH="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	lr := &lineReader{f: out.(*os.File)}
	return cmd, lr
}

type lineReader struct{ f *os.File }

func (l *lineReader) line(t *testing.T, d time.Duration) string {
	t.Helper()
	_ = l.f.SetReadDeadline(time.Now().Add(d))
	var b []byte
	one := make([]byte, 1)
	for {
		n, err := l.f.Read(one)
		if n == 1 {
			if one[0] == '\n' {
				return string(b)
			}
			b = append(b, one[0])
			continue
		}
		if err != nil {
			t.Fatalf("helper: no line within %s: %v (got %q)", d, err, b)
		}
	}
}

func mustAcquire(t *testing.T, path string) *Holder {
	t.Helper()
	h, err := Acquire(context.Background(), path, Options{})
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	t.Cleanup(func() { _ = h.Release() })
	return h
}

func TestAcquireCreatesPrivateFileAndExcludes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.lock")
	h := mustAcquire(t, path)

	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if m := st.Mode(); !m.IsRegular() || m.Perm() != 0o600 {
		t.Errorf("lock file mode = %v, want regular 0600", m)
	}
	// A second open file description conflicts, in this process as in any.
	if _, err := Acquire(context.Background(), path, Options{}); !errors.Is(err, ErrBusy) {
		t.Fatalf("second Acquire: got %v, want ErrBusy", err)
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("lock file gone after release: %v", err)
	}
	mustAcquire(t, path)
}

func TestAcquireNeverTruncates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.lock")
	rec := Record{PID: 1, Run: "r", Fence: 7, State: StateReleased}
	if err := os.WriteFile(path, rec.Marshal(), 0o600); err != nil {
		t.Fatal(err)
	}
	h := mustAcquire(t, path)
	prev, err := h.Previous()
	if err != nil || prev.Fence != 7 {
		t.Fatalf("Previous = %+v, %v; want the record with fence 7", prev, err)
	}
}

func TestHolderSurvivesGarbageCollection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.lock")
	func() { mustAcquire(t, path) }() // no reference kept but t.Cleanup's
	for i := 0; i < 5; i++ {
		runtime.GC()
	}
	if _, err := Acquire(context.Background(), path, Options{}); !errors.Is(err, ErrBusy) {
		t.Fatalf("after GC: got %v, want the lock still held", err)
	}
}

func TestUnusablePaths(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("precious\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.lock")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, "dangling.lock")
	if err := os.Symlink(filepath.Join(dir, "nothing"), dangling); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.lock")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock.lock")
	sfd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(sfd)
	if err := unix.Bind(sfd, &unix.SockaddrUnix{Name: sock}); err != nil {
		t.Fatal(err)
	}
	linked := filepath.Join(dir, "linked.lock")
	if err := os.Link(target, linked); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, path, reason string
	}{
		{"symlink", link, "symbolic link"},
		{"dangling symlink", dangling, "symbolic link"},
		{"fifo", fifo, "FIFO"},
		{"socket", sock, "socket"},
		{"device", "/dev/null", "device"},
		{"no directory", filepath.Join(dir, "none", "x.lock"), "does not exist"},
		{"hard link", linked, "hard links"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := Acquire(context.Background(), c.path, Options{})
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("Acquire blocked on an unusable path")
			}
			var ue *UnusableError
			if !errors.As(err, &ue) {
				t.Fatalf("got %v, want *UnusableError", err)
			}
			if !strings.Contains(ue.Error(), c.reason) || !strings.Contains(ue.Error(), c.path) {
				t.Errorf("message %q should name the path and say %q", ue.Error(), c.reason)
			}
		})
	}

	b, err := os.ReadFile(target)
	if err != nil || string(b) != "precious\n" {
		t.Errorf("symlink target changed: %q, %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "nothing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("dangling symlink's target was created")
	}
}

// nobodysFile is an empty file owned by uid 65534 in a fresh directory;
// the test is skipped without root, which alone can give a file away.
func nobodysFile(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to give a file to another user")
	}
	path := filepath.Join(t.TempDir(), "run.lock")
	if err := os.WriteFile(path, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestForeignOwnerRefused(t *testing.T) {
	path := nobodysFile(t)
	_, err := Acquire(context.Background(), path, Options{})
	var ue *UnusableError
	if !errors.As(err, &ue) || ue.kind != kindForeign {
		t.Fatalf("got %v, want a foreign-owner refusal", err)
	}
	if !strings.Contains(ue.Error(), "uid 65534") || ue.Hint == "" {
		t.Errorf("message %q (hint %q) should name the owner and say what to do", ue, ue.Hint)
	}
}

// The kernel's fs.protected_regular makes open(O_CREAT) of another user's
// file in a sticky directory fail with EACCES before we can look at it.
func TestProtectedRegularMessage(t *testing.T) {
	path := nobodysFile(t)
	err := openError(path, unix.EACCES)
	var ue *UnusableError
	if !errors.As(err, &ue) || ue.kind != kindForeign ||
		!strings.Contains(ue.Reason, "protected_regular") {
		t.Fatalf("got %v, want a foreign-owner refusal that names fs.protected_regular", err)
	}
}

func TestReplacedInodeIsNotHeld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run.lock")
	first := mustAcquire(t, path)

	// A waiter sleeps on the first inode; meanwhile the file is replaced.
	got := make(chan *Holder, 1)
	go func() {
		h, err := Acquire(context.Background(), path, Options{Wait: true})
		if err != nil {
			t.Error(err)
		}
		got <- h
	}()
	waitForWaiter(t, path)
	tmp := filepath.Join(dir, "new")
	if err := os.WriteFile(tmp, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	_ = first.Release()

	h := <-got
	defer h.Release()
	held, err := h.StillHeld()
	if err != nil || !held {
		t.Fatalf("waiter holds a lock on a file the path no longer names (%v)", err)
	}
	// And the lock it holds is the one on the new file.
	if _, err := Acquire(context.Background(), path, Options{}); !errors.Is(err, ErrBusy) {
		t.Fatalf("new file not locked: %v", err)
	}
}

func TestStillHeldNoticesDeletion(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.lock")
	h := mustAcquire(t, path)
	if ok, err := h.StillHeld(); !ok || err != nil {
		t.Fatalf("StillHeld = %v, %v before deletion", ok, err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if ok, _ := h.StillHeld(); ok {
		t.Fatal("StillHeld = true after the lock file was deleted")
	}
}

// waitForWaiter returns once /proc/locks shows a waiter queued on path.
func waitForWaiter(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if lockQueue(t, path) > 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no waiter showed up in /proc/locks")
}

func TestWaitWakesOnRelease(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.lock")
	h := mustAcquire(t, path)
	got := make(chan time.Time, 1)
	go func() {
		w, err := Acquire(context.Background(), path, Options{Wait: true})
		if err != nil {
			t.Error(err)
			got <- time.Time{}
			return
		}
		got <- time.Now()
		_ = w.Release()
	}()
	waitForWaiter(t, path)
	released := time.Now()
	_ = h.Release()
	select {
	case at := <-got:
		t.Logf("waiter woke %s after release", at.Sub(released))
	case <-time.After(10 * time.Second):
		t.Fatal("waiter did not wake after release")
	}
}

func TestWaitTimesOutAndNeverTakesTheLockLater(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.lock")
	h := mustAcquire(t, path)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, err := Acquire(ctx, path, Options{Wait: true})
	if !errors.Is(err, ErrBusy) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want ErrBusy and DeadlineExceeded", err)
	}
	t.Logf("wait gave up after %s", time.Since(t0))

	// The abandoned wait must be off the lock's queue: once the holder lets
	// go, nobody holds the lock, not even for an instant.
	if lockQueue(t, path) != 0 {
		t.Fatal("the abandoned waiter is still queued on the lock")
	}
	_ = h.Release()
	for i := 0; i < 50; i++ {
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		unix.Close(fd)
		if err != nil {
			t.Fatalf("lock taken by someone after the timed-out wait: %v", err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// lockQueue counts waiters queued on path in /proc/locks.
func lockQueue(t *testing.T, path string) int {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
	b, _ := os.ReadFile("/proc/locks")
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, "->") && strings.Contains(line, want) {
			n++
		}
	}
	return n
}

// A waiter must sleep inside flock(2), not in a retry loop: a thread of the
// waiting process shows flock as its current system call.
func TestWaiterSleepsInFlock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.lock")
	_, holder := startHelper(t, "hold", path)
	if l := holder.line(t, 10*time.Second); l != "held" {
		t.Fatalf("holder: %q", l)
	}
	waiter, wout := startHelper(t, "wait", path)
	if l := wout.line(t, 10*time.Second); l != "waiting" {
		t.Fatalf("waiter: %q", l)
	}
	waitForWaiter(t, path)

	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", waiter.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	var seen []string
	inFlock := false
	for _, task := range tasks {
		dir := fmt.Sprintf("/proc/%d/task/%s/", waiter.Process.Pid, task.Name())
		sc, _ := os.ReadFile(dir + "syscall")
		wchan, _ := os.ReadFile(dir + "wchan")
		f := strings.Fields(string(sc))
		seen = append(seen, fmt.Sprintf("%s:%q/%s", task.Name(), f, wchan))
		if len(f) > 0 && f[0] == strconv.Itoa(unix.SYS_FLOCK) {
			inFlock = true
			t.Logf("thread %s sleeps in flock(2), wchan %q", task.Name(), wchan)
		}
	}
	if !inFlock {
		t.Fatalf("no thread of the waiter is in flock(2): %v", seen)
	}

	// And it wakes the moment the holder dies.
	t0 := time.Now()
	_ = syscall.Kill(holderPid(t, path), syscall.SIGKILL)
	if l := wout.line(t, 10*time.Second); l != "got" {
		t.Fatalf("waiter: %q", l)
	}
	t.Logf("waiter took the lock %s after kill -9 of the holder", time.Since(t0))
}

func holderPid(t *testing.T, path string) int {
	t.Helper()
	pids, err := Holders(path)
	if err != nil || len(pids) != 1 {
		t.Fatalf("Holders = %v, %v; want one", pids, err)
	}
	return pids[0]
}

func TestHoldersNamesOnlyTheHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.lock")
	holder, hout := startHelper(t, "hold", path)
	if l := hout.line(t, 10*time.Second); l != "held" {
		t.Fatalf("holder: %q", l)
	}
	waiter, wout := startHelper(t, "wait", path)
	wout.line(t, 10*time.Second)
	waitForWaiter(t, path)

	// This process has the file open too, as a reader: not a holder.
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	pids, err := Holders(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(pids) != 1 || pids[0] != holder.Process.Pid {
		t.Fatalf("Holders = %v, want only the holder %d (waiter %d, reader %d)",
			pids, holder.Process.Pid, waiter.Process.Pid, os.Getpid())
	}
	locked, err := KernelLocked(path)
	if err != nil || !locked {
		t.Fatalf("KernelLocked = %v, %v; want true", locked, err)
	}
}

// reapedPID returns the pid of a process that has exited and been reaped.
func reapedPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}
