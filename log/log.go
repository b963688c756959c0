// Package log writes runnerlock's event log: one line per event, in logfmt or
// JSON, each line appended to the log with a single write(2).
//
// The package owns the shape of an event line (time, name, level, fields),
// the two formats and how values are encoded in them, and the way lines reach
// the file: appended atomically, following log rotation, and never failing
// the caller when the log cannot be written. It does not decide which events
// exist or which fields they carry; the callers do, as DESIGN.md lists. It is
// not a debug logger: there are no levels below info and no filtering.
//
// # Formats
//
// Logfmt (the default) writes
//
//	2026-12-03T09:55:02.123Z skip session="3f1c" reason="runner-busy" holder_pid=4242
//
// The time is UTC, RFC 3339 with milliseconds. Warning and error events carry
// level="warn" or level="error" right after the name; info events have no
// level pair. Strings are always double-quoted; numbers, booleans and null
// are bare.
//
// JSON writes one object per line, built by zerolog, with "time", "level"
// ("info", "warn" or "error") and "event" first, then the fields. Both
// formats carry the same fields in the same order.
//
// # Zerolog settings
//
// Zerolog's settings are process-wide variables. This package sets none of
// them and depends on none that matter: it writes time, level and event as
// ordinary string fields and formats times, durations and floats itself, so
// zerolog.TimeFieldFormat, TimestampFunc, LevelFieldName,
// FloatingPointPrecision and the like do not change its output. The one
// global it cannot escape is zerolog.SetGlobalLevel(zerolog.Disabled), which
// would silence the JSON format; runnerlock never calls it.
package log

import (
	"fmt"
	"io"
	"time"

	"github.com/rs/zerolog"
)

// Format selects how an event is written.
type Format int

const (
	// Logfmt writes `TIME NAME key=value ...` lines. It is the default and
	// the format the old log greps expect.
	Logfmt Format = iota
	// JSON writes one JSON object per line.
	JSON
)

// String returns the name ParseFormat accepts for f.
func (f Format) String() string {
	switch f {
	case Logfmt:
		return "logfmt"
	case JSON:
		return "json"
	}
	return fmt.Sprintf("Format(%d)", int(f))
}

// ParseFormat returns the Format named s, which is "logfmt" or "json".
func ParseFormat(s string) (Format, error) {
	switch s {
	case "logfmt":
		return Logfmt, nil
	case "json":
		return JSON, nil
	}
	return Logfmt, fmt.Errorf("unknown event log format %q: want \"logfmt\" or \"json\"", s)
}

// A Logger writes events to one output. It is safe for concurrent use by
// multiple goroutines; loggers made from it by With share its output, its
// warning output and its count of dropped events.
//
// A nil *Logger discards every event.
type Logger struct {
	out    *output
	format Format
	zl     zerolog.Logger // the JSON engine; unused for Logfmt
	fields []field        // from With, written before each event's own fields
	now    func() time.Time
}

// Open opens path for appending and returns a Logger writing to it. The file
// is created with mode 0600 if it does not exist, and opened with
// O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC|O_NOFOLLOW, so a symbolic link at path
// is refused rather than followed. A path of "" or "-" means standard error.
//
// Before each event the Logger checks that path still names the file it has
// open; if the file was moved away or deleted, or path now names another
// file, it reopens path and writes there. Rotation by rename and rotation by
// copy-and-truncate both work.
//
// The error, if any, is an *fs.PathError naming path.
func Open(path string, f Format) (*Logger, error) {
	if path == "" || path == "-" {
		return newLogger(newStderrOutput(), f), nil
	}

	out, err := openOutput(path)
	if err != nil {
		return nil, err
	}
	return newLogger(out, f), nil
}

// OpenOrStderr is Open, except that when path cannot be opened it prints
//
//	runnerlock: warning: cannot open event log PATH: REASON; events go to standard error
//
// to warn (os.Stderr if nil) and returns a Logger writing to standard error,
// whose warning output is warn. It never returns nil.
func OpenOrStderr(path string, f Format, warn io.Writer) *Logger {
	l, err := Open(path, f)
	if err == nil {
		if warn != nil {
			l.SetWarnOutput(warn)
		}
		return l
	}

	if warn == nil {
		warn = defaultWarn()
	}
	fmt.Fprintf(warn, "runnerlock: warning: cannot open event log %s: %v; "+
		"events go to standard error\n", path, reason(err))
	l = newLogger(newStderrOutput(), f)
	l.SetWarnOutput(warn)
	return l
}

// New returns a Logger writing events to w. Each event reaches w as one
// complete line, "\n" included, in one Write call; calls are serialised, so
// w need not be safe for concurrent use. Close does not close w.
func New(w io.Writer, f Format) *Logger {
	return newLogger(newWriterOutput(w), f)
}

func newLogger(out *output, f Format) *Logger {
	l := &Logger{out: out, format: f, now: time.Now}
	if f == JSON {
		l.zl = zerolog.New(out)
	}
	return l
}

// With returns a logger whose every event carries the fields kv before the
// event's own fields, as in l.With("run", id, "session", s). The new logger
// shares l's output. kv is read as by Event.
func (l *Logger) With(kv ...any) *Logger {
	if l == nil {
		return nil
	}

	child := *l
	child.fields = make([]field, 0, len(l.fields)+(len(kv)+1)/2)
	child.fields = append(child.fields, l.fields...)
	child.fields = appendFields(child.fields, kv, true)
	return &child
}

// Event writes an info-level event called name with the fields kv.
//
// kv alternates keys and values. A key is a string (anything else is
// formatted with fmt.Sprint); characters other than [A-Za-z0-9_.-] become
// "_", an empty key becomes "_", and the keys "time", "level" and "event",
// which every JSON line already has, become "_time", "_level" and "_event".
// A key without a value gets the string "!MISSING".
//
// Values are written as
//
//   - string: a string;
//   - int and uint kinds: a number;
//   - bool: true or false;
//   - float64: a number, or the string "NaN", "+Inf" or "-Inf";
//   - nil: null;
//   - time.Time: a string in RFC 3339, UTC, with milliseconds;
//   - time.Duration: a string such as "1.5s";
//   - error and fmt.Stringer: a string, the error's message or String();
//   - []int and []string: in logfmt a string of the elements joined by
//     commas, as pids="12,34"; in JSON an array;
//   - anything else: a string, formatted with fmt.Sprint.
//
// Event never fails: an event that cannot be written is counted by Dropped,
// and the first such failure prints one warning (see SetWarnOutput).
func (l *Logger) Event(name string, kv ...any) {
	l.log(levelInfo, name, kv)
}

// Warn writes a warning-level event; see Event.
func (l *Logger) Warn(name string, kv ...any) {
	l.log(levelWarn, name, kv)
}

// Error writes an error-level event; see Event.
func (l *Logger) Error(name string, kv ...any) {
	l.log(levelError, name, kv)
}

// Dropped returns how many events l and the loggers sharing its output have
// failed to write.
func (l *Logger) Dropped() int {
	if l == nil || l.out == nil {
		return 0
	}
	return l.out.droppedCount()
}

// SetWarnOutput sets where the one warning about a log that cannot be
// written goes; nil restores the default, os.Stderr. The warning is
//
//	runnerlock: warning: cannot write event log PATH: REASON
//
// and is printed once per output, for its first failure; later failures are
// only counted.
func (l *Logger) SetWarnOutput(w io.Writer) {
	if l == nil || l.out == nil {
		return
	}
	l.out.setWarn(w)
}

// Close closes the file that Open opened; it does not close standard error
// or a writer given to New. Events written after Close, by l or by any logger
// sharing its output, are dropped and counted.
func (l *Logger) Close() error {
	if l == nil || l.out == nil {
		return nil
	}
	return l.out.close()
}

func (l *Logger) log(lv level, name string, kv []any) {
	if l == nil || l.out == nil {
		return
	}

	t := l.now()
	if l.format == JSON {
		l.writeJSON(t, lv, name, kv)
		return
	}

	bp := getBuffer()
	line := appendLogfmt((*bp)[:0], t, lv, name, l.fields, kv)
	l.out.write(line)
	*bp = line
	putBuffer(bp)
}
