//go:build unix

package lock

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// recordSignature starts every record this tool writes (Marshal keeps the
// field order), which tells a lock file from a file that merely sits at
// the lock path.
var recordSignature = []byte(`{"pid":`)

// Previous returns the record left in the lock file by the previous holder,
// read through the held descriptor. ErrNoRecord means a new or empty file.
func (h *Holder) Previous() (Record, error) {
	data, err := h.readContent()
	if err != nil {
		return Record{}, err
	}
	return ParseRecord(data)
}

// WriteRecord replaces the holder record with r, through the held
// descriptor: one pwrite at offset 0, then a truncate to its length (a
// reader that races us sees the new line first, and reads one line).
// It refuses to overwrite a file whose content is not a record, so that a
// --lock pointed at some other file of ours never destroys it.
func (h *Holder) WriteRecord(r Record) error {
	if h.fd < 0 {
		return errors.New("lock released")
	}
	old, err := h.readContent()
	if err != nil {
		return err
	}
	if len(old) > 0 && !bytes.HasPrefix(old, recordSignature) {
		return &UnusableError{Path: h.path,
			Reason: fmt.Sprintf("holds %d bytes that are not a holder record; "+
				"refusing to overwrite a file that is not a lock file", len(old)),
			Hint: "point --lock at a path of its own"}
	}

	line := r.Marshal()
	if len(line) > maxRecordSize {
		return fmt.Errorf("holder record of %d bytes is too big", len(line))
	}
	for {
		n, err := unix.Pwrite(h.fd, line, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &fs.PathError{Op: "write record", Path: h.path, Err: err}
		}
		if n != len(line) {
			return &fs.PathError{Op: "write record", Path: h.path, Err: errors.New("short write")}
		}
		break
	}
	if err := unix.Ftruncate(h.fd, int64(len(line))); err != nil {
		return &fs.PathError{Op: "truncate record", Path: h.path, Err: err}
	}
	return nil
}

func (h *Holder) readContent() ([]byte, error) {
	buf := make([]byte, maxRecordSize)
	n := 0
	for n < len(buf) {
		m, err := unix.Pread(h.fd, buf[n:], int64(n))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, &fs.PathError{Op: "read record", Path: h.path, Err: err}
		}
		if m == 0 {
			break
		}
		n += m
	}
	return buf[:n], nil
}

// readLockFile reads a lock file without locking it, refusing what is not a
// regular file so that a reader never blocks on a FIFO.
func readLockFile(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read record", Path: path, Err: errors.New("not a regular file")}
	}
	return readAll(f)
}
