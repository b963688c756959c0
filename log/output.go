package log

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
)

// An output is where a Logger's lines go: a file opened by path, which it
// follows across rotation, or a plain writer. It is shared by a Logger and
// every Logger made from it by With.
//
// Atomicity. Each line is handed to the file in one write(2). On Linux, a
// write to a regular file opened with O_APPEND moves to the end and writes
// the whole buffer under the inode's lock, so lines from many processes
// never interleave or tear (see write(2), "O_APPEND"); NFS gives no such
// promise. Standard error, when it is a pipe, is atomic only up to PIPE_BUF
// (4 KiB on Linux); longer lines may interleave there.
//
// A short write with no error, which a regular file gives only in odd cases
// such as a signal or RLIMIT_FSIZE, is completed by writing the rest (os.File
// already does this itself). That second write is a last resort: another
// process may append between the two, so the line may then be split. A write
// that fails midway leaves a partial line in the file, without its "\n";
// readers must expect that after a disk has filled.
type output struct {
	mu      sync.Mutex
	w       io.Writer
	file    *os.File    // non-nil when opened by path
	path    string      // the path to follow; "" for standard error and New
	info    fs.FileInfo // file's identity, to compare with path's
	name    string      // the output's name in the warning
	warn    io.Writer   // nil means os.Stderr
	warned  bool
	dropped int
	closed  bool
}

func openOutput(path string) (*output, error) {
	f, info, err := openFile(path)
	if err != nil {
		return nil, err
	}
	return &output{w: f, file: f, path: path, info: info, name: path}, nil
}

// openFile opens path with the flags Open documents and returns the file
// and its identity.
func openFile(path string) (*os.File, fs.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|openFlags, 0o600)
	if err != nil {
		return nil, nil, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, info, nil
}

func newStderrOutput() *output {
	return &output{w: os.Stderr, name: "standard error"}
}

func newWriterOutput(w io.Writer) *output {
	name := "writer"
	if f, ok := w.(*os.File); ok {
		name = f.Name()
	}
	return &output{w: w, name: name}
}

func defaultWarn() io.Writer { return os.Stderr }

// Write writes one complete line; zerolog calls it once per JSON event. It
// always reports success, since a failure is handled here, and zerolog would
// otherwise print a message of its own.
func (o *output) Write(p []byte) (int, error) {
	o.write(p)
	return len(p), nil
}

func (o *output) write(line []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()

	err := o.writeLocked(line)
	if err == nil {
		return
	}

	o.dropped++
	if o.warned {
		return
	}
	o.warned = true
	warn := o.warn
	if warn == nil {
		warn = defaultWarn()
	}
	fmt.Fprintf(warn, "runnerlock: warning: cannot write event log %s: %v\n",
		o.name, reason(err))
}

func (o *output) writeLocked(line []byte) error {
	if o.closed {
		return os.ErrClosed
	}
	if o.path != "" {
		if err := o.follow(); err != nil {
			return err
		}
	}

	for {
		n, err := o.w.Write(line)
		if err != nil {
			return err
		}
		if n >= len(line) {
			return nil
		}
		if n <= 0 {
			return io.ErrShortWrite
		}
		line = line[n:]
	}
}

// follow reopens the path if it no longer names the open file: the file was
// renamed away or deleted by log rotation, or another file took its place.
// It costs one lstat(2) per event. Lstat, not Stat, because the file was
// opened with O_NOFOLLOW: a symbolic link put at the path is another file,
// and reopening refuses it.
//
// If the path cannot be examined for another reason (say, its directory
// became unreadable), the open file is kept. If the path cannot be reopened,
// the event is dropped and the next event tries again.
func (o *output) follow() error {
	info, err := os.Lstat(o.path)
	if err == nil && os.SameFile(info, o.info) {
		return nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil
	}

	f, info, err := openFile(o.path)
	if err != nil {
		return err
	}
	o.file.Close()
	o.w, o.file, o.info = f, f, info
	return nil
}

func (o *output) droppedCount() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.dropped
}

func (o *output) setWarn(w io.Writer) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.warn = w
}

func (o *output) close() error {
	o.mu.Lock()
	defer o.mu.Unlock()

	if o.closed {
		return nil
	}
	o.closed = true
	if o.file == nil {
		return nil
	}
	return o.file.Close()
}

// reason returns the cause inside err without the operation and path, which
// the warning already names: "no space left on device", not "write
// /var/log/x: no space left on device".
func reason(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
