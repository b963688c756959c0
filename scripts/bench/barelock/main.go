// Command barelock is the floor of scripts/bench.sh: the least a Go
// program must do to run a command under a flock(2), so that the cost of
// the Go runtime's start is visible apart from runnerlock's own work.
//
//	barelock FILE CMD [ARG...]
//
// It opens FILE (O_RDWR|O_CREAT|O_CLOEXEC), takes flock(LOCK_EX|LOCK_NB),
// clears close-on-exec so that CMD inherits the locked descriptor, and
// execs CMD in its own place. It exits 1 when the lock is busy, as
// flock -n does, and 2 on any other error. Nothing else: no log, no
// record, no supervision.
package main

import (
	"os"
	"strings"
	"syscall"
)

func main() {
	if len(os.Args) < 3 {
		os.Stderr.WriteString("usage: barelock FILE CMD [ARG...]\n")
		os.Exit(2)
	}
	fd, err := syscall.Open(os.Args[1], syscall.O_RDWR|syscall.O_CREAT|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		fail(err)
	}
	if err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if err == syscall.EWOULDBLOCK {
			os.Exit(1)
		}
		fail(err)
	}
	if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_SETFD, 0); e != 0 {
		fail(e)
	}
	path := lookPath(os.Args[2])
	fail(syscall.Exec(path, os.Args[2:], os.Environ()))
}

// lookPath finds name in $PATH as a shell would, without os/exec.
func lookPath(name string) string {
	if strings.Contains(name, "/") {
		return name
	}
	for _, dir := range strings.Split(os.Getenv("PATH"), ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + name
		if syscall.Access(p, 1) == nil {
			return p
		}
	}
	return name
}

func fail(err error) {
	os.Stderr.WriteString("barelock: " + err.Error() + "\n")
	os.Exit(2)
}
