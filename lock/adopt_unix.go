//go:build unix

package lock

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Adopt returns the holder of a lock that another process took and handed
// to this one as the descriptor fd, as the hook hands the lock it took to
// the detached supervisor it starts. The lock belongs to the open file
// description, which both processes share, so it is never free between
// the two.
//
// After success fd holds the exclusive lock on the file that path names
// now, and the Holder owns fd: Release closes it, and fd is marked
// close-on-exec so that only a run started on purpose inherits it. Adopt
// fails, leaving fd open, when fd is not a lock file of ours (see
// UnusableError), when path no longer names the file fd is open on (it was
// deleted or replaced since the lock was taken), or, wrapping ErrBusy,
// when someone else holds the lock. A description that does not hold the
// lock while it is free takes it; only a caller that was handed a held
// descriptor may assume that the lock was held throughout.
func Adopt(path string, fd int) (*Holder, error) {
	if fd < 0 {
		return nil, fmt.Errorf("adopt lock %s: bad descriptor %d", path, fd)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &UnusableError{Path: path, Reason: "cannot inspect the handed-over descriptor",
			Err: err}
	}
	if err := checkOpened(path, &st); err != nil {
		return nil, err
	}

	// flock(2) on a description that already holds an exclusive lock
	// returns at once and changes nothing: the kernel finds the lock of the
	// same file with the same type and leaves it (fs/locks.c,
	// flock_lock_inode). It neither waits nor drops the lock for an instant,
	// as a conversion between shared and exclusive would. So this proves
	// that fd holds the lock without ever letting go of it.
	if err := tryFlock(fd); err != nil {
		if errors.Is(err, ErrBusy) {
			return nil, fmt.Errorf("adopt lock %s: the handed-over descriptor does not hold "+
				"the lock: %w", path, ErrBusy)
		}
		return nil, unusableFlock(path, err)
	}

	h, same, err := verifyInode(path, fd)
	if err != nil {
		return nil, err
	}
	if !same {
		return nil, &UnusableError{Path: path,
			Reason: "no longer names the locked file (it was deleted or replaced " +
				"after the lock was taken)"}
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_SETFD, unix.FD_CLOEXEC); err != nil {
		return nil, &UnusableError{Path: path, Reason: "cannot mark the lock close-on-exec",
			Err: err}
	}
	return h, nil
}
