//go:build linux

package lock

// Micro-benchmarks of the lock's own work, apart from process start-up,
// which scripts/bench.sh measures end to end (see BENCHMARKS.md):
//
//	go test -run '^$' -bench . -benchmem ./lock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkAcquireRelease is a free lock taken and dropped: open, flock,
// the inode check, close.
func BenchmarkAcquireRelease(b *testing.B) {
	path := filepath.Join(b.TempDir(), "lock")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		h, err := Acquire(ctx, path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		if err := h.Release(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAcquireBusy is what `run -n` pays to learn that the lock is held.
func BenchmarkAcquireBusy(b *testing.B) {
	path := filepath.Join(b.TempDir(), "lock")
	ctx := context.Background()
	h, err := Acquire(ctx, path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Release()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Acquire(ctx, path, Options{}); !errors.Is(err, ErrBusy) {
			b.Fatalf("Acquire of a held lock: %v", err)
		}
	}
}

// BenchmarkHolderCycle is a run's whole use of the lock file, the command
// aside: acquire, read the previous record, write the running record, write
// it released, release.
func BenchmarkHolderCycle(b *testing.B) {
	path := filepath.Join(b.TempDir(), "lock")
	ctx := context.Background()
	rec := NewRecord("0123456789abcdef", "bench", []string{"true"})
	b.ReportAllocs()
	for b.Loop() {
		h, err := Acquire(ctx, path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		prev, err := h.Previous()
		if err != nil && !errors.Is(err, ErrNoRecord) {
			b.Fatal(err)
		}
		now := time.Now()
		if rec.Fence, err = NextFence(prev.Fence, now); err != nil {
			b.Fatal(err)
		}
		rec.Since, rec.State = now, StateRunning
		if err := h.WriteRecord(rec); err != nil {
			b.Fatal(err)
		}
		rec.State = StateReleased
		if err := h.WriteRecord(rec); err != nil {
			b.Fatal(err)
		}
		if err := h.Release(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWaitHandoff is the time from a release to the return of a
// waiter's Acquire (Wait), both in this process on two open files; the
// waiter is asleep in flock(2) before the timer runs.
func BenchmarkWaitHandoff(b *testing.B) {
	path := filepath.Join(b.TempDir(), "lock")
	ctx := context.Background()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		h, err := Acquire(ctx, path, Options{})
		if err != nil {
			b.Fatal(err)
		}
		got := make(chan *Holder, 1)
		go func() {
			w, err := Acquire(ctx, path, Options{Wait: true})
			if err != nil {
				b.Error(err)
			}
			got <- w
		}()
		if err := waitForWaiterOn(path); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := h.Release(); err != nil {
			b.Fatal(err)
		}
		w := <-got
		b.StopTimer()
		if w == nil {
			b.FailNow()
		}
		if err := w.Release(); err != nil {
			b.Fatal(err)
		}
	}
}

// waitForWaiterOn returns once /proc/locks shows a process asleep in
// flock(2) on the file at path.
func waitForWaiterOn(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	_, ino := fileID(st)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		b, err := os.ReadFile("/proc/locks")
		if err != nil {
			return err
		}
		if waitersShow(b, ino) {
			return nil
		}
		time.Sleep(100 * time.Microsecond)
	}
	return errors.New("no waiter showed in /proc/locks")
}

// waitersShow reports a "-> FLOCK" line of /proc/locks on inode ino.
func waitersShow(b []byte, ino uint64) bool {
	suffix := ":" + strconv.FormatUint(ino, 10)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) >= 7 && f[1] == "->" && f[2] == "FLOCK" && strings.HasSuffix(f[6], suffix) {
			return true
		}
	}
	return false
}

// BenchmarkSelfReads is the /proc reads behind Self, uncached: this
// process's start time (/proc/self/stat), the boot id and the pid
// namespace. Every supervisor pays them once, to write its record.
func BenchmarkSelfReads(b *testing.B) {
	pid := os.Getpid()
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := procStat(pid); err != nil {
			b.Fatal(err)
		}
		if bootID() == "" {
			b.Fatal("no boot id")
		}
		if _, err := os.Readlink("/proc/self/ns/pid"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkJudge is the liveness check of a recorded supervisor: kill 0
// and its /proc/PID/stat.
func BenchmarkJudge(b *testing.B) {
	id := Self()
	b.ReportAllocs()
	for b.Loop() {
		if Judge(id) != Alive {
			b.Fatal("we are not alive")
		}
	}
}

// BenchmarkHolders is the scan of /proc/PID/fdinfo that names the
// processes holding the lock (status, and the reclaim of a dead run). It
// grows with the number of processes on the machine.
func BenchmarkHolders(b *testing.B) {
	path := filepath.Join(b.TempDir(), "lock")
	h, err := Acquire(context.Background(), path, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Release()
	b.ReportAllocs()
	for b.Loop() {
		pids, err := Holders(path)
		if err != nil {
			b.Fatal(err)
		}
		if len(pids) != 1 {
			b.Fatalf("holders %v, want only us", pids)
		}
	}
}
