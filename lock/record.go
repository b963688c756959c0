package lock

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
)

// Record states. A record says running from the moment its run is started
// until it has ended and its terminal event is written; released after.
const (
	StateRunning  = "running"
	StateReleased = "released"
)

// MaxFence is the largest fence: 2^53-1, so that JSON readers in any
// language keep it exact.
const MaxFence = 1<<53 - 1

// maxRecordSize bounds what is read of a lock file and written to it.
const maxRecordSize = 64 << 10

// maxCommandText bounds the command kept in a record, so that a huge
// argument list cannot make the record too big to write in one call.
const maxCommandText = 4 << 10

// Record is the holder record, one JSON line at the start of the lock file,
// written through the held descriptor after the lock is taken. It is
// information for people and for the next holder; it is never the lock
// itself, and nothing may trust it without the kernel's word.
type Record struct {
	PID      int       `json:"pid"`       // the supervisor that holds the lock
	PIDStart uint64    `json:"pid_start"` // its start time, clock ticks after boot
	Run      string    `json:"run"`       // the run's id, also RUNNERLOCK_RUN
	Session  string    `json:"session,omitempty"`
	Since    time.Time `json:"since"` // when the run took the lock
	Command  []string  `json:"command,omitempty"`
	Host     string    `json:"host,omitempty"`
	BootID   string    `json:"boot_id,omitempty"`
	PIDNS    string    `json:"pid_ns,omitempty"` // e.g. "pid:[4026531836]"
	Fence    int64     `json:"fence"`
	State    string    `json:"state"`
}

// ErrNoRecord reports a lock file that holds no record (new, or emptied).
var ErrNoRecord = errors.New("no holder record")

// ParseRecord decodes the first line of a lock file. It accepts what a
// previous version wrote and ignores unknown fields; it rejects what is not
// a record, so that a torn or foreign file is never mistaken for one.
func ParseRecord(data []byte) (Record, error) {
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		data = data[:i]
	}
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return Record{}, ErrNoRecord
	}
	var r Record
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&r); err != nil {
		return Record{}, fmt.Errorf("holder record: %w", err)
	}
	if dec.More() {
		return Record{}, errors.New("holder record: trailing data")
	}
	if r.Fence < 0 || r.Fence > MaxFence {
		return Record{}, fmt.Errorf("holder record: fence %d out of range", r.Fence)
	}
	if r.PID < 0 {
		return Record{}, fmt.Errorf("holder record: pid %d out of range", r.PID)
	}
	return r, nil
}

// Marshal encodes the record as one line ending in a newline.
func (r Record) Marshal() []byte {
	r.Command = clipCommand(r.Command)
	b, err := json.Marshal(r)
	if err != nil {
		// Every field is a plain value: Marshal cannot fail.
		panic(err)
	}
	return append(b, '\n')
}

func clipCommand(cmd []string) []string {
	total := 0
	for i, a := range cmd {
		total += len(a)
		if total > maxCommandText {
			out := append([]string(nil), cmd[:i]...)
			return append(out, "...")
		}
	}
	return cmd
}

// ReadRecord reads the holder record at path without locking: a reader
// merely has the file open, which never disturbs the lock. The record may
// be from any earlier holder; callers ask the kernel who holds the lock.
func ReadRecord(path string) (Record, error) {
	data, err := readLockFile(path)
	if err != nil {
		return Record{}, err
	}
	return ParseRecord(data)
}

func readAll(r io.Reader) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r, maxRecordSize))
}

// NextFence returns the fence for the holder after one whose record had
// prev (0 when there was none). It exceeds prev, and it is tied to the clock
// (microseconds since 1970) so that it also exceeds every earlier fence
// after a cleaner removed the lock file and with it the previous record.
// Microseconds stay under MaxFence until the year 2255.
func NextFence(prev int64, now time.Time) (int64, error) {
	next := now.UnixMicro()
	if prev >= next {
		next = prev + 1
	}
	if next > MaxFence || next <= 0 {
		return 0, fmt.Errorf("fence exhausted: the previous record's fence is %d", prev)
	}
	return next, nil
}

// hostName is the host recorded in records; empty when unknown.
func hostName() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return h
}
