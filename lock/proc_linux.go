package lock

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

var (
	selfOnce sync.Once
	self     Identity
)

// Self returns the calling process's identity; it is read once.
func Self() Identity {
	selfOnce.Do(func() {
		self.PID = os.Getpid()
		self.Start, _, _ = procStat(self.PID)
		self.BootID = bootID()
		self.PIDNS, _ = os.Readlink("/proc/self/ns/pid")
	})
	return self
}

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// procStat returns field 22 (start time) and field 3 (state) of
// /proc/PID/stat. The command name in field 2 may hold spaces and
// parentheses, so fields are counted from the last ')'.
func procStat(pid int) (start uint64, state byte, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	return parseStat(b)
}

func parseStat(b []byte) (start uint64, state byte, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); field 22 is f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, errors.New("malformed stat")
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, errors.New("malformed stat")
	}
	return start, f[0][0], nil
}

// Judge says whether the process id names is alive, by pid and start time.
// A process recorded on another boot or in another pid namespace is
// Unknown, since containers can share /tmp and their pids are not ours.
func Judge(id Identity) Liveness {
	me := Self()
	if id.PID <= 0 || id.BootID == "" || id.BootID != me.BootID || id.PIDNS != me.PIDNS {
		return Unknown
	}
	return judgePID(id.PID, func(start uint64) Liveness {
		if id.Start != 0 && start != id.Start {
			return Dead // the pid was reused
		}
		return Alive
	})
}

// judgePID applies kill(pid, 0) and /proc/PID/stat; byStart decides once
// the pid is known to exist and not to be a zombie.
func judgePID(pid int, byStart func(start uint64) Liveness) Liveness {
	err := unix.Kill(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return Dead
	}
	if err != nil && !errors.Is(err, unix.EPERM) {
		return Unknown
	}
	start, state, err := procStat(pid)
	if errors.Is(err, os.ErrNotExist) {
		// Gone between kill and the read, or hidden from us by /proc's
		// hidepid=: only kill can tell.
		if errors.Is(unix.Kill(pid, 0), unix.ESRCH) {
			return Dead
		}
		return Unknown
	}
	if err != nil {
		return Unknown
	}
	if state == 'Z' || state == 'X' {
		return Dead
	}
	return byStart(start)
}

// Holders returns the pids of the processes whose descriptor holds the
// flock on the file at path: /proc/PID/fdinfo shows a lock only for the
// open file that holds it, so a waiter or a reader that merely has the
// file open is not among them. A process whose descriptors we may not read
// (another user's) is missing from the list.
func Holders(path string) ([]int, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return holdersOf(uint64(st.Dev), uint64(st.Ino))
}

func holdersOf(dev, ino uint64) ([]int, error) {
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []int
	for _, p := range procs {
		pid, err := strconv.Atoi(p.Name())
		if err != nil || pid <= 0 {
			continue
		}
		if holdsLock(pid, dev, ino) {
			out = append(out, pid)
		}
	}
	return out, nil
}

func holdsLock(pid int, dev, ino uint64) bool {
	dir := "/proc/" + strconv.Itoa(pid)
	fds, err := os.ReadDir(dir + "/fd")
	if err != nil {
		return false
	}
	for _, fd := range fds {
		var st unix.Stat_t
		if unix.Stat(filepath.Join(dir, "fd", fd.Name()), &st) != nil {
			continue
		}
		if uint64(st.Dev) != dev || uint64(st.Ino) != ino {
			continue
		}
		if fdinfoHoldsFlock(filepath.Join(dir, "fdinfo", fd.Name())) {
			return true
		}
	}
	return false
}

// fdinfoHoldsFlock reads a /proc/PID/fdinfo/FD file: a descriptor that
// holds a lock shows it on a "lock:" line, as /proc/locks would.
func fdinfoHoldsFlock(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "lock:") && strings.Contains(line, "FLOCK") &&
			!strings.Contains(line, "->") {
			return true
		}
	}
	return false
}

// KernelLocked reports whether /proc/locks shows a flock on the file at
// path. Its pid column names whoever called flock, who may be gone after a
// hand-off, so only the answer yes or no is taken from it.
func KernelLocked(path string) (bool, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return false, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		return false, err
	}
	return locksShow(b, uint64(st.Dev), uint64(st.Ino)), nil
}

func locksShow(b []byte, dev, ino uint64) bool {
	want := fmt.Sprintf("%02x:%02x:%d", unix.Major(dev), unix.Minor(dev), ino)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		// "1: FLOCK  ADVISORY  WRITE 4242 00:2e:1234 0 EOF"; a waiter's
		// line has "->" after the number.
		if len(f) >= 6 && f[1] == "FLOCK" && f[5] == want {
			return true
		}
	}
	return false
}

// RunOf returns the RUNNERLOCK_RUN in the environment a process started
// with, or "" when it has none or it cannot be read. It ties a leftover
// process to the run that started it.
func RunOf(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return ""
	}
	const key = "RUNNERLOCK_RUN="
	for _, kv := range bytes.Split(b, []byte{0}) {
		if bytes.HasPrefix(kv, []byte(key)) {
			return string(kv[len(key):])
		}
	}
	return ""
}
