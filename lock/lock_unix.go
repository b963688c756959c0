//go:build unix

package lock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// openFlags are the only flags a lock file is opened with. O_NOFOLLOW: a
// symlink planted at the path must not redirect us; no O_TRUNC: the file is
// never truncated on open; O_NONBLOCK: a FIFO planted at the path must not
// block the open (it is refused right after); O_CLOEXEC: only the run that
// is meant to share the lock inherits it, and only on purpose.
const openFlags = unix.O_RDWR | unix.O_CREAT | unix.O_NOFOLLOW | unix.O_CLOEXEC | unix.O_NONBLOCK

// openLockFile opens (creating, mode 0600) the lock file at path after
// checking that it is a regular file of ours. It refuses, without opening,
// what could block the open or harm someone: links, FIFOs, sockets,
// devices, and files owned by another user.
func openLockFile(path string) (int, error) {
	if st, err := os.Lstat(path); err == nil {
		if err := checkKind(path, st); err != nil {
			return -1, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return -1, &UnusableError{Path: path, Reason: "cannot inspect the lock path", Err: err}
	}

	fd, err := openRetry(path)
	if err != nil {
		return -1, openError(path, err)
	}

	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		_ = closeFd(fd)
		return -1, &UnusableError{Path: path, Reason: "cannot inspect the lock file", Err: err}
	}
	// The lstat above and the open are two steps: check what was opened.
	if err := checkOpened(path, &st); err != nil {
		_ = closeFd(fd)
		return -1, err
	}
	return fd, nil
}

func openRetry(path string) (int, error) {
	for {
		fd, err := unix.Open(path, openFlags, 0o600)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// checkKind refuses a path that is not a regular file owned by us.
func checkKind(path string, st fs.FileInfo) error {
	switch m := st.Mode(); {
	case m&fs.ModeSymlink != 0:
		return &UnusableError{Path: path, Reason: "is a symbolic link, which is never followed",
			Hint: "remove the link, or point --lock at a regular file"}
	case m.IsDir():
		return &UnusableError{Path: path, Reason: "is a directory, not a lock file", kind: kindDir,
			Hint: "a legacy mkdir lock? see 'runnerlock migrate --help'"}
	case !m.IsRegular():
		return &UnusableError{Path: path, Reason: "is a " + kindName(m) + ", not a regular file",
			Hint: "remove it, or point --lock at a regular file"}
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return checkOwner(path, sys.Uid)
	}
	return nil
}

func checkOpened(path string, st *unix.Stat_t) error {
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return &UnusableError{Path: path, Reason: "is not a regular file"}
	}
	if err := checkOwner(path, st.Uid); err != nil {
		return err
	}
	// A second name for the file means writing our record could change a
	// file that someone else reads under another name.
	if st.Nlink > 1 {
		return &UnusableError{Path: path,
			Reason: fmt.Sprintf("has %d hard links; a lock file must have one name", st.Nlink),
			Hint:   "remove the path, or point --lock at a new file"}
	}
	return nil
}

func checkOwner(path string, uid uint32) error {
	if uid == uint32(os.Geteuid()) {
		return nil
	}
	return &UnusableError{Path: path, kind: kindForeign,
		Reason: fmt.Sprintf("is owned by %s, not by you (%s)", userName(uid),
			userName(uint32(os.Geteuid()))),
		Hint: "users cannot share one lock file; give each user a path of its own " +
			"(--lock or RUNNERLOCK_LOCK)"}
}

func openError(path string, err error) error {
	switch {
	case errors.Is(err, unix.ELOOP):
		return &UnusableError{Path: path, Reason: "is a symbolic link, which is never followed",
			Hint: "remove the link, or point --lock at a regular file"}
	case errors.Is(err, unix.EISDIR):
		return &UnusableError{Path: path, Reason: "is a directory, not a lock file", kind: kindDir}
	case errors.Is(err, unix.EACCES):
		if st, serr := os.Lstat(path); serr == nil {
			if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Uid != uint32(os.Geteuid()) {
				return &UnusableError{Path: path, kind: kindForeign,
					Reason: fmt.Sprintf("is owned by %s, and the kernel refused to open it "+
						"(fs.protected_regular forbids opening another user's file "+
						"in a sticky directory such as /tmp)", userName(sys.Uid)),
					Hint: "give each user a lock path of its own (--lock or RUNNERLOCK_LOCK)"}
			}
		}
		return &UnusableError{Path: path, Reason: "cannot open the lock file", Err: err,
			Hint: "check the permissions of the file and of " + filepath.Dir(path)}
	case errors.Is(err, unix.ENOENT):
		return &UnusableError{Path: path, Reason: "its directory does not exist", Err: err}
	}
	return &UnusableError{Path: path, Reason: "cannot open the lock file", Err: err}
}

// unusableFlock describes a flock(2) failure other than contention.
func unusableFlock(path string, err error) error {
	if errors.Is(err, unix.ENOLCK) || errors.Is(err, unix.EOPNOTSUPP) ||
		errors.Is(err, unix.ENOTSUP) {
		return &UnusableError{Path: path,
			Reason: "this filesystem cannot lock (as on some NFS, 9p and FUSE mounts)", Err: err,
			Hint: "put the lock on a local filesystem such as /tmp or /run"}
	}
	return &UnusableError{Path: path, Reason: "flock failed", Err: err}
}

func tryFlock(fd int) error {
	for {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		switch err {
		case nil:
			return nil
		case unix.EINTR:
			continue
		case unix.EWOULDBLOCK:
			return ErrBusy
		}
		return err
	}
}

// verifyInode compares the locked descriptor with what the path names now.
func verifyInode(path string, fd int) (*Holder, bool, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, false, &UnusableError{Path: path, Reason: "cannot inspect the lock file", Err: err}
	}
	h := &Holder{path: path, fd: fd, dev: uint64(st.Dev), ino: uint64(st.Ino)}
	pst, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return h, false, nil
	}
	if err != nil {
		return nil, false, &UnusableError{Path: path, Reason: "cannot inspect the lock path", Err: err}
	}
	dev, ino := fileID(pst)
	return h, dev == h.dev && ino == h.ino, nil
}

func closeFd(fd int) error {
	// close(2) must not be retried on EINTR on Linux: the descriptor is
	// already gone and its number may belong to someone else by then.
	return unix.Close(fd)
}

func fileID(st fs.FileInfo) (dev, ino uint64) {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return uint64(sys.Dev), uint64(sys.Ino)
	}
	return 0, 0
}

func kindName(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

func userName(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return fmt.Sprintf("user %s (uid %s)", u.Username, id)
	}
	return "uid " + id
}
