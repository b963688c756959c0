//go:build linux

package lock

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestAdoptKeepsTheLockHeld(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	h, err := Acquire(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// What a child gets across exec: another descriptor of the same open
	// file description.
	fd, err := unix.Dup(h.Fd())
	if err != nil {
		t.Fatal(err)
	}
	a, err := Adopt(path, fd)
	if err != nil {
		t.Fatalf("Adopt: %v", err)
	}
	if flags, _ := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); flags&unix.FD_CLOEXEC == 0 {
		t.Error("the adopted descriptor is not close-on-exec")
	}
	h.Release()
	if _, err := Acquire(context.Background(), path, Options{}); !errors.Is(err, ErrBusy) {
		t.Fatalf("after the first copy's release: %v, want busy", err)
	}
	if still, err := a.StillHeld(); err != nil || !still {
		t.Errorf("StillHeld = %v, %v", still, err)
	}
	a.Release()
	h2, err := Acquire(context.Background(), path, Options{})
	if err != nil {
		t.Fatalf("after the adopted release: %v", err)
	}
	h2.Release()
}

func TestAdoptRefusesADescriptorThatDoesNotHoldTheLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	h, err := Acquire(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if _, err := Adopt(path, fd); !errors.Is(err, ErrBusy) {
		t.Errorf("Adopt of a mere reader: %v, want busy", err)
	}
}

func TestAdoptRefusesAReplacedFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	h, err := Acquire(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	fd, _ := unix.Dup(h.Fd())
	defer unix.Close(fd)
	var ue *UnusableError
	if _, err := Adopt(path, fd); !errors.As(err, &ue) {
		t.Errorf("Adopt after the file was replaced: %v, want an UnusableError", err)
	}
}

func TestAdoptRefusesWhatIsNotALockFile(t *testing.T) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	var ue *UnusableError
	if _, err := Adopt(filepath.Join(t.TempDir(), "lock"), p[0]); !errors.As(err, &ue) {
		t.Errorf("Adopt of a pipe: %v, want an UnusableError", err)
	}
}
