package hook

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"time"
)

// Bounds of the hook's input. A hook stuck on an unclosed stdin has frozen
// agent sessions for hours, so the input is read against a deadline, and
// against a cap so that a runaway writer cannot fill memory.
const (
	MaxInput      = 1 << 20         // bytes
	InputDeadline = 5 * time.Second // from the start of the read
	MaxSessionID  = 1024            // bytes of session_id
)

// Input is the Stop hook's event, as agents send it on stdin. Decoding is
// lenient: unknown fields are ignored, and every field but session_id may
// be missing. Agents send more (permission_mode, last_assistant_message,
// agent_id for a SubagentStop, ...); CMD gets all of it in Raw.
type Input struct {
	SessionID      string
	TranscriptPath string
	Cwd            string
	HookEventName  string
	StopHookActive bool

	// Raw is the input byte for byte as it was read: the object, with
	// whatever surrounded it that had already arrived (white space only).
	Raw []byte
}

// InputError reports hook input that cannot be used. Its message is one
// line, for stderr and for the error event; nothing has been started.
type InputError struct {
	Reason string
	Err    error // the underlying error, if any
}

func (e *InputError) Error() string { return "bad hook input: " + e.Reason }
func (e *InputError) Unwrap() error { return e.Err }

// ReadOptions bound ReadInput; zero values mean the defaults.
type ReadOptions struct {
	MaxBytes int           // 0: MaxInput
	Deadline time.Duration // 0: InputDeadline
}

func (o ReadOptions) maxBytes() int {
	if o.MaxBytes > 0 {
		return o.MaxBytes
	}
	return MaxInput
}

func (o ReadOptions) deadline() time.Duration {
	if o.Deadline > 0 {
		return o.Deadline
	}
	return InputDeadline
}

// errOverCap and errDeadline are what the bounded readers return; the
// decoder hands them back unchanged.
var (
	errOverCap  = errors.New("input over the cap")
	errDeadline = os.ErrDeadlineExceeded
)

// ReadInput reads and validates one hook event from r. It returns as soon
// as a complete JSON object has arrived, without waiting for the end of
// input, and gives up with an *InputError when the input is empty, is not
// one JSON object, has a field of the wrong type, lacks a usable
// session_id, exceeds the cap, or is not complete by the deadline.
//
// Whatever has already arrived after the object is taken too (so that the
// newline an agent sends after it reaches CMD), and must be white space.
//
// An *os.File is polled, so the deadline holds for pipes, terminals and
// sockets without changing the descriptor's flags; another reader is read
// on a goroutine, which is left behind, blocked, if the deadline passes.
func ReadInput(r io.Reader, o ReadOptions) (*Input, error) {
	deadline := time.Now().Add(o.deadline())
	src := newBoundedSource(r, deadline)
	defer src.close()
	rec := &recorder{src: src, max: o.maxBytes()}

	dec := json.NewDecoder(rec)
	var msg json.RawMessage
	if err := dec.Decode(&msg); err != nil {
		return nil, decodeError(err, rec, o)
	}
	end := int(dec.InputOffset())
	rec.drain()
	if rec.err != nil && !errors.Is(rec.err, io.EOF) && !errors.Is(rec.err, errDeadline) {
		return nil, decodeError(rec.err, rec, o)
	}
	if len(bytes.TrimSpace(rec.buf[end:])) > 0 {
		return nil, &InputError{Reason: "unexpected data after the JSON object"}
	}
	return parseObject(msg, rec.buf)
}

func parseObject(msg json.RawMessage, raw []byte) (*Input, error) {
	if msg[0] != '{' {
		return nil, &InputError{Reason: "want a JSON object, got " + jsonKind(msg[0])}
	}
	// Keys are matched exactly, not by encoding/json's case-insensitive
	// struct matching: {"Session_ID": ...} is not the session, and CMD
	// (jq, Python) would not read it as one.
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(msg, &obj); err != nil {
		return nil, &InputError{Reason: "not valid JSON: " + err.Error(), Err: err}
	}
	in := &Input{Raw: raw}
	var session *string
	for _, f := range []struct {
		name string
		dst  any
	}{
		{"session_id", &session},
		{"transcript_path", &in.TranscriptPath},
		{"cwd", &in.Cwd},
		{"hook_event_name", &in.HookEventName},
		{"stop_hook_active", &in.StopHookActive},
	} {
		v, ok := obj[f.name]
		if !ok {
			continue
		}
		if err := json.Unmarshal(v, f.dst); err != nil {
			return nil, &InputError{Err: err, Reason: fmt.Sprintf("%s is %s, want %s",
				f.name, jsonKind(v[0]), goKind(reflect.TypeOf(f.dst).Elem()))}
		}
	}
	switch {
	case session == nil:
		return nil, &InputError{Reason: "session_id is missing"}
	case *session == "":
		return nil, &InputError{Reason: "session_id is empty"}
	case len(*session) > MaxSessionID:
		return nil, &InputError{Reason: fmt.Sprintf("session_id is %d bytes long; "+
			"the limit is %d", len(*session), MaxSessionID)}
	case bytes.IndexByte([]byte(*session), 0) >= 0:
		// It becomes RUNNERLOCK_SESSION, and no environment holds a NUL.
		return nil, &InputError{Reason: "session_id contains a NUL character"}
	}
	in.SessionID = *session
	return in, nil
}

func decodeError(err error, rec *recorder, o ReadOptions) error {
	var se *json.SyntaxError
	switch {
	case errors.Is(err, errOverCap):
		return &InputError{Reason: fmt.Sprintf("more than %s without a complete JSON object",
			sizeText(o.maxBytes())), Err: err}
	case errors.Is(err, errDeadline):
		what := "nothing arrived"
		if len(bytes.TrimSpace(rec.buf)) > 0 {
			what = fmt.Sprintf("%d bytes arrived, no complete JSON object", len(rec.buf))
		}
		return &InputError{Reason: fmt.Sprintf("%s within %s; was stdin left open?",
			what, o.deadline()), Err: err}
	case errors.Is(err, io.EOF):
		return &InputError{Reason: "stdin is empty; the Stop hook sends a JSON object", Err: err}
	case errors.Is(err, io.ErrUnexpectedEOF):
		return &InputError{Reason: fmt.Sprintf("the JSON is cut short after %d bytes",
			len(rec.buf)), Err: err}
	case errors.As(err, &se):
		return &InputError{Reason: fmt.Sprintf("not valid JSON: %v (at byte %d)", se, se.Offset),
			Err: err}
	}
	return &InputError{Reason: "cannot read stdin: " + err.Error(), Err: err}
}

// recorder keeps every byte read, so that CMD gets the input unchanged,
// and enforces the cap.
type recorder struct {
	src *boundedSource
	max int
	buf []byte
	err error // the first error of the source; reads after it repeat it
}

func (r *recorder) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if len(r.buf) >= r.max {
		r.err = errOverCap
		return 0, r.err
	}
	if room := r.max - len(r.buf); len(p) > room {
		p = p[:room]
	}
	n, err := r.src.read(p, false)
	r.buf = append(r.buf, p[:n]...)
	if err != nil {
		r.err = err
	}
	return n, err
}

// drain takes what has already arrived after the object, without waiting.
func (r *recorder) drain() {
	var chunk [4096]byte
	for r.err == nil && len(r.buf) < r.max {
		p := chunk[:min(len(chunk), r.max-len(r.buf))]
		n, err := r.src.read(p, true)
		r.buf = append(r.buf, p[:n]...)
		if err != nil {
			r.err = err
		}
		if n == 0 {
			return
		}
	}
}

// boundedSource reads r until a deadline. read with now set returns what
// is available at once, (0, nil) when nothing is.
type boundedSource struct {
	deadline time.Time
	read     func(p []byte, now bool) (int, error)
	close    func()
}

func newBoundedSource(r io.Reader, deadline time.Time) *boundedSource {
	if f, ok := r.(*os.File); ok {
		if s := newPollSource(f, deadline); s != nil {
			return s
		}
	}
	return newPumpSource(r, deadline)
}

// newPumpSource reads r on a goroutine, one chunk at a time, so that a
// read blocked past the deadline can be abandoned.
func newPumpSource(r io.Reader, deadline time.Time) *boundedSource {
	type chunk struct {
		b   []byte
		err error
	}
	ch := make(chan chunk, 1)
	quit := make(chan struct{})
	go func() {
		for {
			b := make([]byte, 32<<10)
			n, err := r.Read(b)
			select {
			case ch <- chunk{b[:n], err}:
			case <-quit:
				return
			}
			if err != nil {
				return
			}
		}
	}()

	var pending []byte
	var perr error
	timer := time.NewTimer(time.Until(deadline))
	s := &boundedSource{deadline: deadline}
	s.read = func(p []byte, now bool) (int, error) {
		for len(pending) == 0 && perr == nil {
			if now {
				select {
				case c := <-ch:
					pending, perr = c.b, c.err
					continue
				default:
					return 0, nil
				}
			}
			select {
			case c := <-ch:
				pending, perr = c.b, c.err
			case <-timer.C:
				perr = errDeadline
			}
		}
		n := copy(p, pending)
		pending = pending[n:]
		if n > 0 || len(pending) > 0 {
			return n, nil
		}
		return 0, perr
	}
	s.close = func() {
		timer.Stop()
		close(quit)
	}
	return s
}

func jsonKind(c byte) string {
	switch {
	case c == '[':
		return "an array"
	case c == '{':
		return "an object"
	case c == '"':
		return "a string"
	case c == 't' || c == 'f':
		return "a boolean"
	case c == 'n':
		return "null"
	}
	return "a number"
}

func goKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	}
	return t.String()
}

func sizeText(n int) string {
	if n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}
