package lock

// Legacy lock directories (DESIGN.md, "Legacy lock directories").
//
// Before runnerlock, hooks took the lock with mkdir PATH and, in their later
// form, wrote their pid to PATH/pid; a shell trap removed the directory,
// which a kill -9 never runs. When PATH is a directory, Acquire and
// MigrateLegacy judge it by DESIGN.md's table while holding a flock on the
// directory itself (so that two runnerlock processes never judge or migrate
// one directory at once), and migrate only the very directory they judged:
// the new lock file is created and locked under a private name, swapped
// with the directory in one step, and the swapped-out inode is compared
// with the judged one before anything is removed.
//
// This file holds the contract and the judgement; legacy_linux.go the facts
// about processes and the kernel primitives (renameat2, pidfd, inotify).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofrs/flock"
	"golang.org/x/sys/unix"
)

// DefaultLegacyMaxAge is the age after which a legacy directory without a
// usable pid file counts as stale.
const DefaultLegacyMaxAge = time.Hour

// Reasons of a LegacyDecision. The first three are the reasons a directory
// is stale, and the reasons that the migrate event carries.
const (
	LegacyHolderDead = "holder-dead" // the pid names no process, or a zombie
	LegacyPIDReused  = "pid-reused"  // the pid names a process that is not the writer
	LegacyNoPIDAged  = "no-pid-aged" // no usable pid, and older than the max age

	LegacyHolderAlive   = "holder-alive"   // busy: the writer of the pid file is alive
	LegacyNoPIDYoung    = "no-pid-young"   // busy: no usable pid, younger than the max age
	LegacyPIDUnreadable = "pid-unreadable" // busy: the pid file exists but cannot be read

	LegacyUnexpected = "unexpected-entry" // refused: something besides the pid file
	LegacyUnreadable = "unreadable"       // refused: the directory cannot be inspected
)

// errRetry asks Acquire to decide afresh: the path changed under us.
var errRetry = errors.New("lock path changed; decide again")

// LegacyDecision is the judgement of a legacy lock directory.
type LegacyDecision struct {
	Stale  bool   // the directory may be migrated
	Reason string // one of the Legacy* reasons
	PID    int    // the usable pid in PATH/pid; 0 when there is none

	// Detail says, in an operator's words, why the pid file is not usable
	// or why the directory was refused; empty otherwise.
	Detail string
}

// Refused reports a directory that is not judged at all: it holds what a
// legacy hook never left there, or it cannot be inspected.
func (d LegacyDecision) Refused() bool {
	return d.Reason == LegacyUnexpected || d.Reason == LegacyUnreadable
}

// Migration describes a legacy directory turned into a lock file.
type Migration struct {
	OldPID int    // the pid in the old directory's pid file; 0 when none was usable
	Reason string // LegacyHolderDead, LegacyPIDReused or LegacyNoPIDAged

	// Leftover names where the old directory was left when it could not be
	// removed after the exchange (something appeared in it); empty when it
	// was removed. The lock file is in place either way.
	Leftover string
}

// LegacyBusyError reports a legacy lock directory whose holder is alive, or
// that cannot be judged stale yet. It wraps ErrBusy, and the context's
// error when a wait for the holder ended with its context.
type LegacyBusyError struct {
	Path   string
	PID    int    // 0 when the directory has no usable pid file
	Reason string // LegacyHolderAlive, LegacyNoPIDYoung or LegacyPIDUnreadable; may be empty
	Age    time.Duration
	Err    error // the context's error when a wait ended; nil otherwise
}

func (e *LegacyBusyError) Error() string {
	s := "legacy lock " + e.Path + " is held"
	if e.PID > 0 {
		s = "legacy lock " + e.Path + " is held by pid " + itoa(e.PID)
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

func (e *LegacyBusyError) Unwrap() []error {
	if e.Err != nil {
		return []error{ErrBusy, e.Err}
	}
	return []error{ErrBusy}
}

func itoa(n int) string { return strconv.Itoa(n) }

// legacySettle is how long a fresh migration holds its new lock file before
// handing it out, and then checks that the path still names it.
//
// A legacy hook's steal is `kill -0 $(cat PATH/pid) || rm -rf PATH`: a
// stealer that read the dead pid a moment before we migrated goes on to
// remove whatever PATH names, which is now our lock file, and then mkdirs
// its own directory. No protocol on our side can close that window (the
// stealer may pause for any time between its check and its rm), but it lasts
// as long as the stealer's fork and exec of rm, milliseconds. Holding the
// file this long first, and taking the lock again from the top if it is
// gone, narrows it to a stealer stalled for longer than that. It costs
// once per migrated directory. The steal race of scripts/test-legacy.sh
// (a stealer and a runnerlock started together on a stale directory) shows
// it: without the settle they overlapped in 100 of 100 tries on a loaded
// 2-core machine, with it in none of 120. A variable for the tests.
var legacySettle = 500 * time.Millisecond

// legacyClockSlack is the error allowed, in favour of "alive", when the start
// time of a process is compared with the time its pid file was written: boot
// time is known to the second, start times to the clock tick, and file
// times to the filesystem's granularity.
const legacyClockSlack = 2 * time.Second

// maxPIDFile bounds what is read of a pid file: a pid and a newline, with
// room for stray whitespace. A bigger file holds no pid.
const maxPIDFile = 64

// Test hooks; nil outside the tests.
var (
	testHookBeforeExchange func() // runs just before the exchange
	testHookAfterMigrate   func() // runs once the new lock file is in place
)

// legacyFacts is what was read of a legacy directory, through a descriptor
// of the directory itself.
type legacyFacts struct {
	dev, ino uint64
	uid      uint32
	mtime    time.Time // the directory's

	hasPIDFile    bool
	pidMtime      time.Time
	pid           int    // 0 when there is no usable pid
	pidProblem    string // why there is no usable pid
	pidUnreadable bool   // a pid file we may not read

	unexpected string // what is in the directory besides a pid file

	start uint64 // the holder's start time when judged alive, for the wait
}

// newest is the last time the directory or its pid file changed: its age is
// counted from then, so that anything touched recently counts as young.
func (f *legacyFacts) newest() time.Time {
	if f.pidMtime.After(f.mtime) {
		return f.pidMtime
	}
	return f.mtime
}

func (f *legacyFacts) age(now time.Time) time.Duration {
	return max(now.Sub(f.newest()), 0)
}

// LegacyStatus and the way status reports it live in status.go.

// DescribeLegacy reports on the legacy directory at path, judged with
// DefaultLegacyMaxAge, without changing it and without taking any lock,
// not even the directory's flock: its verdict is what the next command
// would decide at this instant.
func DescribeLegacy(path string) LegacyStatus {
	s, err := describeLegacy(path, DefaultLegacyMaxAge)
	if err != nil {
		s.Decision = LegacyDecision{Reason: LegacyUnreadable, Detail: errText(err)}
	}
	return s
}

// describeLegacy judges without a lock; it returns errRetry when path is no
// longer a directory.
func describeLegacy(path string, maxAge time.Duration) (LegacyStatus, error) {
	dfd, err := openLegacyDir(path)
	if err != nil {
		return LegacyStatus{}, err
	}
	defer closeFd(dfd)
	f, err := readLegacyFacts(dfd)
	if err != nil {
		return LegacyStatus{}, err
	}
	now := time.Now()
	d := judgeLegacy(&f, maxAge, now)
	return LegacyStatus{PID: d.PID, Alive: d.Reason == LegacyHolderAlive, Age: f.age(now),
		Decision: d}, nil
}

// judgeLegacy decides by DESIGN.md's table. Reclaiming needs proof of death:
// anything that cannot be read or told apart counts as alive.
func judgeLegacy(f *legacyFacts, maxAge time.Duration, now time.Time) LegacyDecision {
	if f.unexpected != "" {
		return LegacyDecision{Reason: LegacyUnexpected, Detail: f.unexpected}
	}
	if f.pid > 0 {
		l, reused, start := legacyHolder(f.pid, f.pidMtime)
		switch {
		case l == Dead && reused:
			return LegacyDecision{Stale: true, Reason: LegacyPIDReused, PID: f.pid}
		case l == Dead:
			return LegacyDecision{Stale: true, Reason: LegacyHolderDead, PID: f.pid}
		}
		f.start = start
		return LegacyDecision{Reason: LegacyHolderAlive, PID: f.pid}
	}
	if f.pidUnreadable {
		return LegacyDecision{Reason: LegacyPIDUnreadable, Detail: f.pidProblem}
	}
	if f.age(now) > maxAge {
		return LegacyDecision{Stale: true, Reason: LegacyNoPIDAged, Detail: f.pidProblem}
	}
	return LegacyDecision{Reason: LegacyNoPIDYoung, Detail: f.pidProblem}
}

// parsePID reads a pid file's content: one decimal pid, with whitespace
// around it. It returns 0 and why when the content names no process we
// could judge. Our own pid is refused too: we never write legacy pid files,
// so a file that names us was written on another boot or in another pid
// namespace.
func parsePID(b []byte, self, pidMax int) (int, string) {
	if len(b) > maxPIDFile {
		return 0, fmt.Sprintf("the pid file holds more than %d bytes", maxPIDFile)
	}
	s := string(bytes.TrimSpace(b))
	switch {
	case len(b) == 0:
		return 0, "the pid file is empty"
	case s == "":
		return 0, "the pid file holds only whitespace"
	case s[0] == '-' && len(s) > 1 && allDigits(s[1:]):
		return 0, fmt.Sprintf("the pid file holds a negative number (%s)", s)
	case !allDigits(s):
		return 0, fmt.Sprintf("the pid file holds %q, not a pid", clip(s, 20))
	case s == "0" || strings.TrimLeft(s, "0") == "":
		return 0, "the pid file holds 0, which names no process"
	case s[0] == '0':
		return 0, fmt.Sprintf("the pid file holds %q, not a pid as a shell writes one", s)
	}
	pid, err := strconv.Atoi(s)
	if err != nil || pid >= pidMax {
		return 0, fmt.Sprintf("the pid file holds %s, beyond pid_max (%d)", clip(s, 20), pidMax)
	}
	if pid == self {
		return 0, fmt.Sprintf("the pid file names this process (%d), "+
			"so it was written on another boot or in another pid namespace", pid)
	}
	return pid, ""
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// openLegacyDir opens the directory at path for reading and locking. It
// never follows a symlink at path. When path is no longer a directory it
// returns errRetry.
func openLegacyDir(path string) (int, error) {
	for {
		fd, err := unix.Open(path,
			unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
		switch {
		case err == unix.EINTR:
			continue
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.ELOOP):
			return -1, errRetry // gone, or now a file or a link: decide again
		}
		return -1, &UnusableError{Path: path, Reason: "cannot open the legacy lock directory",
			Err: err, Hint: "check the permissions of " + path + " and of " + filepath.Dir(path)}
	}
}

// readLegacyFacts reads the directory dfd and its pid file through dfd, so
// that what is judged is the very directory that is locked, wherever it has
// been moved meanwhile.
func readLegacyFacts(dfd int) (legacyFacts, error) {
	var f legacyFacts
	var st unix.Stat_t
	if err := unix.Fstat(dfd, &st); err != nil {
		return f, &fs.PathError{Op: "stat", Path: "legacy directory", Err: err}
	}
	f.dev, f.ino, f.uid = uint64(st.Dev), uint64(st.Ino), st.Uid
	f.mtime = time.Unix(st.Mtim.Unix())

	names, err := dirNames(dfd)
	if err != nil {
		return f, err
	}
	var other []string
	for _, n := range names {
		if n != "pid" {
			other = append(other, strconv.Quote(n))
		}
	}
	if len(other) > 0 {
		slices.Sort(other)
		more := ""
		if len(other) > 3 {
			other, more = other[:3], " and more"
		}
		f.unexpected = "holds " + strings.Join(other, ", ") + more + " besides its pid file"
		return f, nil
	}
	if len(names) == 0 {
		f.pidProblem = "there is no pid file"
		return f, nil
	}
	return f, readPIDFile(dfd, &f)
}

// dirNames lists up to a few entries of dfd: one besides "pid" is enough to
// refuse, however many there are.
func dirNames(dfd int) ([]string, error) {
	fd, err := unix.Openat(dfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: "legacy directory", Err: err}
	}
	d := os.NewFile(uintptr(fd), "legacy directory")
	defer d.Close()
	names, err := d.Readdirnames(8)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return names, nil
}

func readPIDFile(dfd int, f *legacyFacts) error {
	var st unix.Stat_t
	err := unix.Fstatat(dfd, "pid", &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		f.pidProblem = "there is no pid file"
		return nil
	}
	if err != nil {
		return &fs.PathError{Op: "stat", Path: "pid", Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.unexpected = `holds "pid" as a ` + modeKind(uint32(st.Mode)) + ", not a pid file"
		return nil
	}
	f.hasPIDFile = true
	f.pidMtime = time.Unix(st.Mtim.Unix())

	// O_NOFOLLOW and O_NONBLOCK: the name may have been replaced since the
	// stat by a link or a FIFO, which must neither redirect nor block us.
	fd, err := unix.Openat(dfd, "pid",
		unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		f.hasPIDFile, f.pidMtime = false, time.Time{}
		f.pidProblem = "there is no pid file"
		return nil
	case errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM):
		f.pidUnreadable = true
		f.pidProblem = "the pid file cannot be read: " + errText(err)
		return nil
	case err != nil:
		// ELOOP among them: replaced by a link since the stat.
		return &fs.PathError{Op: "open", Path: "pid", Err: err}
	}
	file := os.NewFile(uintptr(fd), "pid")
	defer file.Close()
	if err := unix.Fstat(fd, &st); err != nil {
		return &fs.PathError{Op: "stat", Path: "pid", Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.unexpected = `holds "pid" as a ` + modeKind(uint32(st.Mode)) + ", not a pid file"
		return nil
	}
	f.pidMtime = time.Unix(st.Mtim.Unix())

	buf := make([]byte, maxPIDFile+1)
	n := 0
	for n < len(buf) {
		m, err := file.Read(buf[n:])
		n += m
		if err != nil {
			break // io.EOF, or an error: judge what was read
		}
	}
	f.pid, f.pidProblem = parsePID(buf[:n], os.Getpid(), pidMax())
	return nil
}

func modeKind(m uint32) string {
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFLNK:
		return "symbolic link"
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFSOCK:
		return "socket"
	case unix.S_IFCHR, unix.S_IFBLK:
		return "device"
	}
	return "special file"
}

// takeLegacy applies DESIGN.md's table to the directory at path, for
// Acquire: it migrates a stale directory and returns the held lock file,
// refuses what it did not expect, and reports a live one busy (or, with
// o.Wait, waits for it to change and returns errRetry).
func takeLegacy(ctx context.Context, path string, o Options) (*Holder, error) {
	maxAge := o.LegacyMaxAge
	if maxAge <= 0 {
		maxAge = DefaultLegacyMaxAge
	}

	h, f, d, err := judgeAndMigrate(ctx, path, maxAge, o.Wait)
	if err != nil {
		return nil, err
	}
	if h != nil {
		return settle(ctx, h)
	}

	busy := &LegacyBusyError{Path: path, PID: d.PID, Reason: d.Reason, Age: f.age(time.Now())}
	if !o.Wait {
		return nil, busy
	}
	if err := waitLegacy(ctx, path, &f, d, maxAge); err != nil {
		busy.Err = err
		return nil, busy
	}
	return nil, errRetry
}

// judgeAndMigrate holds the directory's flock while it judges and, when the
// directory is stale, migrates it; the flock ends with it. It returns the
// holder of a migration, or the facts and decision of a busy directory.
func judgeAndMigrate(ctx context.Context, path string, maxAge time.Duration,
	wait bool) (*Holder, legacyFacts, LegacyDecision, error) {
	var f legacyFacts
	var d LegacyDecision
	// The directory's flock is a short lock that is never handed on, which
	// is what github.com/gofrs/flock is for. It keeps its descriptor to
	// itself, so the judgement reads the pid file and the entries through a
	// descriptor of our own, checked to be the very inode that is locked:
	// what is judged is what is locked, and what is later compared with the
	// swapped-out inode.
	dirLock := flock.New(path,
		flock.SetFlag(os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_NONBLOCK))
	defer dirLock.Close()
	locked, err := dirLock.TryLock()
	if err == nil && !locked {
		// Another runnerlock is judging or migrating this directory; either
		// way the lock is not ours to take now.
		if !wait {
			return nil, f, d, &LegacyBusyError{Path: path}
		}
		// It holds the directory's lock for milliseconds, so the library's
		// polling wait costs nothing that matters here.
		locked, err = dirLock.TryLockContext(ctx, 5*time.Millisecond)
		if !locked && err != nil && ctx.Err() != nil {
			return nil, f, d, &LegacyBusyError{Path: path, Err: ctx.Err()}
		}
	}
	if err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return nil, f, d, errRetry // migrated or removed meanwhile
		}
		return nil, f, d, unusableFlock(path, err)
	}
	lst, err := dirLock.Stat()
	if err != nil {
		return nil, f, d, &UnusableError{Path: path,
			Reason: "cannot inspect the legacy lock directory", Err: err}
	}
	dfd, err := openLegacyDir(path)
	if err != nil {
		return nil, f, d, err
	}
	defer closeFd(dfd)
	var dst unix.Stat_t
	if err := unix.Fstat(dfd, &dst); err != nil {
		return nil, f, d, &UnusableError{Path: path,
			Reason: "cannot inspect the legacy lock directory", Err: err}
	}
	if ldev, lino := fileID(lst); ldev != uint64(dst.Dev) || lino != uint64(dst.Ino) {
		return nil, f, d, errRetry // the path names another directory now
	}

	f, err = readLegacyFacts(dfd)
	if err != nil {
		var st unix.Stat_t
		if unix.Fstat(dfd, &st) == nil && !pathNames(path, uint64(st.Dev), uint64(st.Ino)) {
			// Removed (migrated by another runnerlock) between our open and
			// our flock: reading a removed directory fails with ENOENT.
			return nil, f, d, errRetry
		}
		return nil, f, d, &UnusableError{Path: path,
			Reason: "cannot inspect the legacy lock directory", Err: err}
	}
	d = judgeLegacy(&f, maxAge, time.Now())
	// Is path still the directory we locked? Another runnerlock may have
	// migrated it between our open and our flock; then we judged a removed
	// directory.
	if !pathNames(path, f.dev, f.ino) {
		return nil, f, d, errRetry
	}

	switch {
	case d.Refused():
		return nil, f, d, refusal(path, d)
	case !d.Stale:
		return nil, f, d, nil
	case f.uid != uint32(os.Geteuid()):
		return nil, f, d, &UnusableError{Path: path, kind: kindForeign,
			Reason: fmt.Sprintf("is a stale legacy lock directory (%s) owned by %s; "+
				"runnerlock does not migrate another user's directory", d.Reason, userName(f.uid)),
			Hint: "have its owner run 'runnerlock migrate', or remove it by hand"}
	}
	h, err := migrateLegacy(path, dfd, &f, d)
	return h, f, d, err
}

func refusal(path string, d LegacyDecision) error {
	if d.Reason == LegacyUnreadable {
		return &UnusableError{Path: path, Reason: "cannot inspect the legacy lock directory: " +
			d.Detail}
	}
	return &UnusableError{Path: path,
		Reason: "is a directory that " + d.Detail +
			", so not a legacy lock directory as runnerlock knows them; " +
			"refusing to judge it or delete anything",
		Hint: "if --lock names the wrong path, point it at a lock file path; if this " +
			"is a legacy lock, look inside and clear out what does not belong there"}
}

// pathNames reports whether path names the inode dev/ino now.
func pathNames(path string, dev, ino uint64) bool {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return false
	}
	return uint64(st.Dev) == dev && uint64(st.Ino) == ino
}

// migrateLegacy turns the stale directory dfd, judged by f and d, into a
// lock file at path: it creates and locks a new file under a private name
// beside path, exchanges the two names in one step, and checks that what was
// swapped out is the judged directory. Only then does it remove that
// directory (its pid file, then the directory). When something else was
// swapped out, a legacy hook replaced the directory after we judged it: it
// swaps back and returns errRetry. A filesystem without the exchange is
// refused; there is no fallback to a plain rename or rmdir, which could
// remove a directory that a legacy hook has just made.
func migrateLegacy(path string, dfd int, f *legacyFacts, d LegacyDecision) (*Holder, error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	pfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &UnusableError{Path: path, Reason: "cannot open the lock path's directory",
			Err: err}
	}
	defer closeFd(pfd)

	tmp, fd, err := createMigrationFile(pfd, base)
	if err != nil {
		return nil, &UnusableError{Path: path,
			Reason: "cannot create the new lock file beside the legacy directory", Err: err,
			Hint: "check the permissions of " + dir}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		discardMigrationFile(pfd, tmp, fd, 0, 0)
		return nil, &UnusableError{Path: path, Reason: "cannot inspect the new lock file", Err: err}
	}
	dev, ino := uint64(st.Dev), uint64(st.Ino)
	if err := tryFlock(fd); err != nil {
		discardMigrationFile(pfd, tmp, fd, dev, ino)
		return nil, unusableFlock(path, err)
	}

	if testHookBeforeExchange != nil {
		testHookBeforeExchange()
	}
	err = renameExchange(pfd, tmp, pfd, base)
	switch {
	case errors.Is(err, unix.ENOENT):
		// path vanished since we judged it (a legacy hook removed it).
		discardMigrationFile(pfd, tmp, fd, dev, ino)
		return nil, errRetry
	case exchangeUnsupported(err):
		discardMigrationFile(pfd, tmp, fd, dev, ino)
		return nil, &UnusableError{Path: path, Err: err,
			Reason: "is a stale legacy lock directory (" + d.Reason + "), but this filesystem " +
				"cannot swap two names in one step (renameat2 RENAME_EXCHANGE), " +
				"which a safe migration needs",
			Hint: "runnerlock never falls back to a plain rename or rmdir; once no legacy run " +
				"uses it, remove its pid file and the directory by hand, " +
				"or put the lock on tmpfs or ext4"}
	case err != nil:
		discardMigrationFile(pfd, tmp, fd, dev, ino)
		return nil, &UnusableError{Path: path, Reason: "cannot swap in the new lock file", Err: err}
	}

	// path is now our locked file; tmp names what path named a moment ago.
	var old unix.Stat_t
	if err := unix.Fstatat(pfd, tmp, &old, unix.AT_SYMLINK_NOFOLLOW); err != nil ||
		uint64(old.Dev) != f.dev || uint64(old.Ino) != f.ino {
		return nil, swapBack(path, pfd, tmp, base, fd, dev, ino)
	}

	m := &Migration{OldPID: d.PID, Reason: d.Reason}
	if err := unix.Unlinkat(dfd, "pid", 0); err != nil && !errors.Is(err, unix.ENOENT) {
		m.Leftover = filepath.Join(dir, tmp)
	} else if err := unix.Unlinkat(pfd, tmp, unix.AT_REMOVEDIR); err != nil {
		// Something appeared in it after we judged it: never delete that.
		m.Leftover = filepath.Join(dir, tmp)
	}
	h := &Holder{path: path, fd: fd, dev: dev, ino: ino, Migrated: m}
	if testHookAfterMigrate != nil {
		testHookAfterMigrate()
	}
	return h, nil
}

// swapBack undoes an exchange that swapped out something other than the
// judged directory, and returns errRetry (or an error when it could not put
// things back). fd is our new lock file, dev/ino its identity.
func swapBack(path string, pfd int, tmp, base string, fd int, dev, ino uint64) error {
	err := renameExchange(pfd, tmp, pfd, base)
	if errors.Is(err, unix.ENOENT) {
		// Our file was removed from path meanwhile (by a legacy hook's rm):
		// put back what we swapped out, unless path was made again.
		if err := renameNoReplace(pfd, tmp, pfd, base); err != nil {
			_ = closeFd(fd)
			return &UnusableError{Path: path, Err: err,
				Reason: "changed while it was migrated; what it named is now at " +
					filepath.Join(filepath.Dir(path), tmp),
				Hint: "inspect both names and put the directory back by hand"}
		}
		_ = closeFd(fd)
		return errRetry
	}
	if err != nil {
		_ = closeFd(fd)
		return &UnusableError{Path: path, Err: err,
			Reason: "changed while it was migrated, and the exchange back failed; what it " +
				"named is now at " + filepath.Join(filepath.Dir(path), tmp),
			Hint: "inspect both names and put the directory back by hand"}
	}
	// tmp names our file again, unless path changed once more between the
	// two exchanges: then tmp holds what path named last, and stays.
	var st unix.Stat_t
	if unix.Fstatat(pfd, tmp, &st, unix.AT_SYMLINK_NOFOLLOW) == nil &&
		uint64(st.Dev) == dev && uint64(st.Ino) == ino {
		discardMigrationFile(pfd, tmp, fd, dev, ino)
		return errRetry
	}
	_ = closeFd(fd)
	return &UnusableError{Path: path,
		Reason: "changed twice while it was migrated; what it named last is now at " +
			filepath.Join(filepath.Dir(path), tmp),
		Hint: "inspect both names and put the directory back by hand"}
}

// createMigrationFile creates and opens, mode 0600, a new file beside the
// lock path under a name of its own: a file left by a crashed migration
// never blocks a later one.
func createMigrationFile(pfd int, base string) (string, int, error) {
	for range 8 {
		var b [6]byte
		_, _ = rand.Read(b[:])
		name := base + ".migrate-" + itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:])
		fd, err := unix.Openat(pfd, name,
			unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.EINTR) {
			continue
		}
		return name, fd, err
	}
	return "", -1, unix.EEXIST
}

// discardMigrationFile removes the name tmp if it still names our file
// (dev/ino; 0 when unknown, for a file just created), and closes fd.
func discardMigrationFile(pfd int, tmp string, fd int, dev, ino uint64) {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, tmp, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil &&
		(ino == 0 || uint64(st.Dev) == dev && uint64(st.Ino) == ino) &&
		st.Mode&unix.S_IFMT == unix.S_IFREG {
		_ = unix.Unlinkat(pfd, tmp, 0)
	}
	_ = closeFd(fd)
}

// settle holds a freshly migrated lock file for legacySettle and returns it
// if path still names it; if a legacy stealer removed it meanwhile (see
// legacySettle) it lets go and returns errRetry.
func settle(ctx context.Context, h *Holder) (*Holder, error) {
	if legacySettle > 0 {
		t := time.NewTimer(legacySettle)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	if still, err := h.StillHeld(); err != nil || !still {
		_ = h.Release()
		return nil, errRetry
	}
	return h, nil
}

func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// MigrateOptions says how MigrateLegacy and Rollback work.
type MigrateOptions struct {
	// DryRun says what would be done and changes nothing. A dry run of
	// MigrateLegacy takes no lock at all; one of Rollback takes the lock
	// for an instant to tell whether it is free.
	DryRun bool

	// Wait waits, within ctx, for a live legacy holder to exit (or for the
	// lock, for Rollback) instead of reporting it busy.
	Wait bool

	// LegacyMaxAge is as in Options; 0 means DefaultLegacyMaxAge.
	LegacyMaxAge time.Duration
}

// MigrateOutcome is what became of one path.
type MigrateOutcome string

// Outcomes of MigrateLegacy and Rollback.
const (
	OutcomeLockFile      MigrateOutcome = "lock-file"       // already a lock file
	OutcomeFree          MigrateOutcome = "free"            // nothing at the path
	OutcomeMigrated      MigrateOutcome = "migrated"        // a stale directory became a lock file
	OutcomeWouldMigrate  MigrateOutcome = "would-migrate"   // dry run: it is stale
	OutcomeBusy          MigrateOutcome = "busy"            // a legacy run is alive, or may be
	OutcomeRolledBack    MigrateOutcome = "rolled-back"     // the free lock file was removed
	OutcomeWouldRollBack MigrateOutcome = "would-roll-back" // dry run: the lock file is free
	OutcomeHeld          MigrateOutcome = "held"            // the lock file is held: left alone
	OutcomeLegacy        MigrateOutcome = "legacy"          // already a legacy directory
)

// MigrateResult says what MigrateLegacy or Rollback found and did at Path.
type MigrateResult struct {
	Path    string
	Outcome MigrateOutcome

	// For a legacy directory: its pid (the old one when migrated, the
	// holder's when busy; 0 when none was usable), the reason of the
	// decision, the directory's age and the max age it was judged by.
	PID    int
	Reason string
	Age    time.Duration
	MaxAge time.Duration

	// Leftover is Migration.Leftover.
	Leftover string
}

// String is the decision in an operator's words, as migrate prints it.
func (r MigrateResult) String() string {
	pid := ""
	if r.PID > 0 {
		pid = ", old pid " + itoa(r.PID)
	}
	switch r.Outcome {
	case OutcomeLockFile:
		return "already a lock file"
	case OutcomeFree:
		return "free (no file)"
	case OutcomeMigrated:
		s := "migrated (" + r.Reason + pid + ")"
		if r.Leftover != "" {
			s += "; the old directory could not be removed and is at " + r.Leftover
		}
		return s
	case OutcomeWouldMigrate:
		return "would migrate (" + r.Reason + pid + ")"
	case OutcomeBusy:
		switch {
		case r.PID > 0:
			return "busy: legacy run alive (pid " + itoa(r.PID) + ")"
		case r.Reason == LegacyNoPIDYoung:
			return fmt.Sprintf("busy: legacy directory without a usable pid, %s old "+
				"(stale after %s)", r.Age.Round(time.Second), r.MaxAge)
		case r.Reason == LegacyPIDUnreadable:
			return "busy: legacy directory whose pid file cannot be read"
		}
		return "busy: another runnerlock is judging the legacy directory"
	case OutcomeRolledBack:
		return "rolled back (lock file removed; legacy hooks can take the path)"
	case OutcomeWouldRollBack:
		return "would roll back (the lock file is free)"
	case OutcomeHeld:
		if r.PID > 0 {
			return "busy: the lock is held (pid " + itoa(r.PID) + ")"
		}
		return "busy: the lock is held"
	case OutcomeLegacy:
		return "already a legacy directory"
	}
	return string(r.Outcome)
}

// MigrateLegacy makes the lock path a lock file if it is a stale legacy
// directory, deciding exactly as Acquire does, and reports what it found.
// A directory is only ever replaced by the exchange that Acquire uses, so a
// legacy hook that makes a fresh directory at any instant keeps it. After
// success the path is a lock file that nobody holds: the new file's lock is
// let go at once.
//
// A live (or too young) legacy directory is reported OutcomeBusy, with no
// error; with o.Wait, MigrateLegacy first waits within ctx for it to go
// (without polling, where the kernel has pidfd_open and inotify) and then
// decides again. A directory that holds anything besides its pid file, a
// filesystem that cannot exchange names, and any other path that Acquire
// would refuse, are refused with an *UnusableError and left as they are.
// With o.DryRun nothing is changed and no lock is taken.
func MigrateLegacy(ctx context.Context, path string, o MigrateOptions) (MigrateResult, error) {
	maxAge := o.LegacyMaxAge
	if maxAge <= 0 {
		maxAge = DefaultLegacyMaxAge
	}
	res := MigrateResult{Path: path, MaxAge: maxAge}
	for {
		fi, err := os.Lstat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			res.Outcome = OutcomeFree
			return res, nil
		case err != nil:
			return res, &UnusableError{Path: path, Reason: "cannot inspect the lock path", Err: err}
		case !fi.IsDir():
			if err := checkKind(path, fi); err != nil {
				return res, err
			}
			res.Outcome = OutcomeLockFile
			return res, nil
		}

		if o.DryRun {
			r, err := dryRun(path, res, maxAge)
			if errors.Is(err, errRetry) {
				continue
			}
			return r, err
		}
		h, err := takeLegacy(ctx, path, Options{Wait: o.Wait, LegacyMaxAge: maxAge})
		var busy *LegacyBusyError
		switch {
		case errors.Is(err, errRetry):
			continue
		case errors.As(err, &busy):
			res.Outcome, res.PID, res.Reason, res.Age = OutcomeBusy, busy.PID, busy.Reason, busy.Age
			return res, nil
		case err != nil:
			return res, err
		}
		m := h.Migrated
		res.Outcome, res.PID, res.Reason, res.Leftover = OutcomeMigrated, m.OldPID, m.Reason,
			m.Leftover
		return res, h.Release()
	}
}

func dryRun(path string, res MigrateResult, maxAge time.Duration) (MigrateResult, error) {
	s, err := describeLegacy(path, maxAge)
	if errors.Is(err, errRetry) {
		return res, err
	}
	if err != nil {
		return res, &UnusableError{Path: path, Reason: "cannot inspect the legacy lock directory",
			Err: err}
	}
	d := s.Decision
	res.PID, res.Reason, res.Age = d.PID, d.Reason, s.Age
	switch {
	case d.Refused():
		return res, refusal(path, d)
	case d.Stale:
		res.Outcome = OutcomeWouldMigrate
	default:
		res.Outcome = OutcomeBusy
	}
	return res, nil
}

// Rollback hands the lock path back to legacy mkdir hooks: it removes the
// lock file, and only while the lock is free. It takes the lock without
// waiting (with o.Wait, waiting within ctx), checks that the path still
// names the locked file and that the file holds a holder record or nothing,
// and removes it while it holds the lock, so nobody who had the file open
// can be inside. A process that opened the file before and locks it after
// finds that the path no longer names it and starts over, as Acquire does.
//
// A held lock is reported OutcomeHeld, with no error, and left alone. A
// path that is already a directory or absent is left alone. Rollback only
// holds while no runnerlock is started on the path any more: the next one
// migrates a stale legacy directory again.
func Rollback(ctx context.Context, path string, o MigrateOptions) (MigrateResult, error) {
	res := MigrateResult{Path: path}
	for {
		if err := ctx.Err(); err != nil && o.Wait {
			res.Outcome = OutcomeHeld
			return res, nil
		}
		fi, err := os.Lstat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			res.Outcome = OutcomeFree
			return res, nil
		case err != nil:
			return res, &UnusableError{Path: path, Reason: "cannot inspect the lock path", Err: err}
		case fi.IsDir():
			res.Outcome = OutcomeLegacy
			return res, nil
		}
		if err := checkKind(path, fi); err != nil {
			return res, err
		}

		fd, err := openLockFile(path)
		var ue *UnusableError
		if errors.As(err, &ue) && ue.kind == kindDir {
			continue
		}
		if err != nil {
			return res, err
		}
		if o.Wait {
			err = waitFlock(ctx, fd, nil)
		} else {
			err = tryFlock(fd)
		}
		if errors.Is(err, ErrBusy) {
			_ = closeFd(fd)
			res.Outcome = OutcomeHeld
			if rec, rerr := ReadRecord(path); rerr == nil && rec.State == StateRunning &&
				Judge(rec.Supervisor()) != Dead {
				res.PID = rec.PID
			}
			return res, nil
		}
		if err != nil {
			_ = closeFd(fd)
			return res, unusableFlock(path, err)
		}
		h, same, err := verifyInode(path, fd)
		if err != nil {
			_ = closeFd(fd)
			return res, err
		}
		if !same {
			_ = closeFd(fd)
			continue
		}
		res, err = rollbackHeld(h, res, o.DryRun)
		_ = h.Release()
		return res, err
	}
}

// rollbackHeld removes the lock file of the held h.
func rollbackHeld(h *Holder, res MigrateResult, dryRun bool) (MigrateResult, error) {
	data, err := h.readContent()
	if err != nil {
		return res, err
	}
	if len(data) > 0 && !bytes.HasPrefix(data, recordSignature) {
		return res, &UnusableError{Path: h.path,
			Reason: fmt.Sprintf("holds %d bytes that are not a holder record; "+
				"refusing to remove a file that is not a lock file", len(data)),
			Hint: "point --lock at the lock file"}
	}
	if dryRun {
		res.Outcome = OutcomeWouldRollBack
		return res, nil
	}
	// The path was checked to name our locked file a moment ago; only a
	// runnerlock that migrates replaces a path, and only a directory.
	if err := unix.Unlink(h.path); err != nil {
		return res, &UnusableError{Path: h.path, Reason: "cannot remove the lock file", Err: err}
	}
	res.Outcome = OutcomeRolledBack
	return res, nil
}
