package log

import (
	"bytes"
	"errors"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testTime is the clock of every test logger; it prints as testStamp.
var testTime = time.Date(2026, 12, 3, 9, 55, 2, 123456789, time.UTC)

const testStamp = "2026-12-03T09:55:02.123Z"

// newTestLogger returns a logger writing to a buffer, with a fixed clock.
func newTestLogger(f Format) (*Logger, *bytes.Buffer) {
	var buf bytes.Buffer
	l := New(&buf, f)
	l.now = func() time.Time { return testTime }
	return l, &buf
}

type stringer struct{}

func (stringer) String() string { return "from String" }

type ptrError struct{ msg string }

func (e *ptrError) Error() string { return e.msg } // panics on a nil *ptrError

func TestLogfmtEncoding(t *testing.T) {
	other := time.FixedZone("UTC+2", 2*60*60)
	var nilErr *ptrError

	tests := []struct {
		name string
		emit func(l *Logger)
		want string // the line after the time and a space, without "\n"
	}{
		{"skip event", func(l *Logger) {
			l.Event("skip", "session", "3f1c", "reason", "runner-busy",
				"holder_pid", 4242)
		}, `skip session="3f1c" reason="runner-busy" holder_pid=4242`},
		{"no fields", func(l *Logger) { l.Event("start") }, `start`},
		{"quote and backslash", func(l *Logger) {
			l.Event("e", "q", `say "hi"`, "b", `C:\dir\`)
		}, `e q="say \"hi\"" b="C:\\dir\\"`},
		{"newline tab return", func(l *Logger) {
			l.Event("e", "v", "a\nb\tc\rd")
		}, `e v="a\nb\tc\rd"`},
		{"unicode kept", func(l *Logger) {
			l.Event("e", "v", "héllo ✓ 🎉")
		}, `e v="héllo ✓ 🎉"`},
		{"control characters", func(l *Logger) {
			l.Event("e", "v", "\x00\a\v\x1b\x7f\u0085\u2028")
		}, `e v="\u0000\u0007\u000b\u001b\u007f\u0085\u2028"`},
		{"invalid utf-8", func(l *Logger) {
			l.Event("e", "v", "a\xffb\xc3")
		}, `e v="a\ufffdb\ufffd"`},
		{"empty string", func(l *Logger) { l.Event("e", "v", "") }, `e v=""`},
		{"string that looks like a number", func(l *Logger) {
			l.Event("e", "v", "42", "w", "true")
		}, `e v="42" w="true"`},
		{"int kinds", func(l *Logger) {
			l.Event("e", "a", 1, "b", int8(-8), "c", int16(-16), "d", int32(32),
				"e", int64(math.MinInt64))
		}, `e a=1 b=-8 c=-16 d=32 e=-9223372036854775808`},
		{"uint kinds", func(l *Logger) {
			l.Event("e", "a", uint(1), "b", uint8(8), "c", uint16(16), "d", uint32(32),
				"e", uint64(math.MaxUint64), "f", uintptr(7))
		}, `e a=1 b=8 c=16 d=32 e=18446744073709551615 f=7`},
		{"bools", func(l *Logger) {
			l.Event("e", "stuck", true, "ok", false)
		}, `e stuck=true ok=false`},
		{"floats", func(l *Logger) {
			l.Event("e", "a", 1.5, "b", 0.0, "c", -2.0, "d", 1e21, "e", 1e-7,
				"f", 123456789.0)
		}, `e a=1.5 b=0 c=-2 d=1e+21 e=1e-7 f=123456789`},
		{"float specials are strings", func(l *Logger) {
			l.Event("e", "a", math.NaN(), "b", math.Inf(1), "c", math.Inf(-1))
		}, `e a="NaN" b="+Inf" c="-Inf"`},
		{"duration", func(l *Logger) {
			l.Event("e", "age", 1500*time.Millisecond, "zero", time.Duration(0))
		}, `e age="1.5s" zero="0s"`},
		{"time in UTC with milliseconds", func(l *Logger) {
			l.Event("e", "since", time.Date(2026, 1, 2, 5, 4, 5, 6e6, other))
		}, `e since="2026-01-02T03:04:05.006Z"`},
		{"error message", func(l *Logger) {
			l.Event("e", "err", errors.New("boom\nsecond line"))
		}, `e err="boom\nsecond line"`},
		{"nil error pointer", func(l *Logger) {
			l.Event("e", "err", nilErr)
		}, `e err="<nil>"`},
		{"slices", func(l *Logger) {
			l.Event("e", "pids", []int{12, 34}, "names", []string{"a", `b"c`},
				"none", []int{}, "nils", []string(nil))
		}, `e pids="12,34" names="a,b\"c" none="" nils=""`},
		{"nil", func(l *Logger) { l.Event("e", "v", nil) }, `e v=null`},
		{"stringer", func(l *Logger) {
			l.Event("e", "v", stringer{})
		}, `e v="from String"`},
		{"other values via fmt.Sprint", func(l *Logger) {
			l.Event("e", "v", struct{ A, B int }{1, 2}, "m", map[string]int{"x": 1},
				"f32", float32(0.5))
		}, `e v="{1 2}" m="map[x:1]" f32="0.5"`},
		{"keys sanitised", func(l *Logger) {
			l.Event("e", "holder pid", 1, "a=b", 2, "", 3, "ключ", 4, "k\n", 5,
				"ok_.-Z9", 6, "\xff", 7)
		}, `e holder_pid=1 a_b=2 _=3 ____=4 k_=5 ok_.-Z9=6 _=7`},
		{"reserved keys renamed", func(l *Logger) {
			l.Event("e", "time", 1, "level", 2, "event", 3)
		}, `e _time=1 _level=2 _event=3`},
		{"non-string key", func(l *Logger) { l.Event("e", 42, "x") }, `e 42="x"`},
		{"odd kv", func(l *Logger) {
			l.Event("e", "a", 1, "b")
		}, `e a=1 b="!MISSING"`},
		{"event name sanitised", func(l *Logger) {
			l.Event("post error\n")
		}, `post_error_`},
		{"warn level pair", func(l *Logger) {
			l.Warn("timeout", "after", time.Second)
		}, `timeout level="warn" after="1s"`},
		{"error level pair", func(l *Logger) {
			l.Error("error", "err", "disk")
		}, `error level="error" err="disk"`},
		{"With fields first, after the level", func(l *Logger) {
			l.With("run", "r1", "session", "s1").Warn("killed", "signal", "TERM")
		}, `killed level="warn" run="r1" session="s1" signal="TERM"`},
		{"With nested", func(l *Logger) {
			l.With("run", "r1").With("pids", []int{1}).Event("done", "status", 0)
		}, `done run="r1" pids="1" status=0`},
		{"With odd kv", func(l *Logger) {
			l.With("run").Event("start")
		}, `start run="!MISSING"`},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, buf := newTestLogger(Logfmt)
			tt.emit(l)

			want := testStamp + " " + tt.want + "\n"
			if got := buf.String(); got != want {
				t.Errorf("got  %q\nwant %q", got, want)
			}
		})
	}
}

// TestWithCopiesSlices checks that a field kept by With does not change
// when the caller later changes the slice it passed.
func TestWithCopiesSlices(t *testing.T) {
	l, buf := newTestLogger(Logfmt)
	pids := []int{1, 2}
	child := l.With("pids", pids)
	pids[0] = 9

	child.Event("e")
	if want := testStamp + " e pids=\"1,2\"\n"; buf.String() != want {
		t.Errorf("got %q, want %q", buf.String(), want)
	}
}

// TestOldGrep checks that the greps written for the old log still find a
// skip event.
func TestOldGrep(t *testing.T) {
	l, buf := newTestLogger(Logfmt)
	l.With("run", "r1").Event("skip", "session", "3f1c", "reason", "runner-busy",
		"holder_pid", 4242, "stuck", true)
	l.Event("start", "session", "other")

	var matched []string
	for _, line := range strings.SplitAfter(buf.String(), "\n") {
		if strings.Contains(line, `reason="runner-busy"`) {
			matched = append(matched, line)
		}
	}
	if len(matched) != 1 || !strings.Contains(matched[0], " skip ") {
		t.Fatalf("grep reason=\"runner-busy\" matched %q", matched)
	}

	re := regexp.MustCompile(`^\S+ skip .*\bstuck=true\b`)
	if !re.MatchString(matched[0]) {
		t.Errorf("%q does not match %v", matched[0], re)
	}
}

func TestQuoteMatchesGo(t *testing.T) {
	tests := []struct {
		name string
		in   string
		same bool // the result is exactly strconv.Quote's
	}{
		{"plain", "runner-busy", true},
		{"empty", "", true},
		{"quotes and backslashes", `a"b\c'd`, true},
		{"common escapes", "a\nb\tc\rd\be\ff", true},
		{"unicode", "日本語 é ✓ 🎉 \ufffd", true},
		{"non-printable BMP", "\u0085\u00ad\u200b\u2028\ufeff", true},
		{"bell and vertical tab", "\a\v", false},
		{"other controls", "\x00\x01\x1f\x7f", false},
		{"invalid utf-8", "\xff\xfe\xc3(", false},
		{"non-printable beyond U+FFFF", "\U000e0001\U0010ffff", false},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(appendQuoted(nil, tt.in))
			if q := strconv.Quote(tt.in); (got == q) != tt.same {
				t.Errorf("appendQuoted = %s, strconv.Quote = %s, want same=%v",
					got, q, tt.same)
			}

			back, err := strconv.Unquote(got)
			if err != nil {
				t.Fatalf("strconv.Unquote(%s): %v", got, err)
			}
			if want := string([]rune(tt.in)); back != want {
				t.Errorf("strconv.Unquote(%s) = %q, want %q", got, back, want)
			}
			if strings.ContainsAny(got, "\n\r") {
				t.Errorf("%q contains a raw line break", got)
			}
		})
	}
}

func TestParseFormat(t *testing.T) {
	tests := []struct {
		in      string
		want    Format
		wantErr bool
	}{
		{"logfmt", Logfmt, false},
		{"json", JSON, false},
		{"JSON", 0, true},
		{"", 0, true},
		{"xml", 0, true},
	}

	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseFormat(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseFormat(%q) = %v, want an error", tt.in, got)
				}
				msg := err.Error()
				parts := []string{strconv.Quote(tt.in), `"logfmt"`, `"json"`}
				for _, part := range parts {
					if !strings.Contains(msg, part) {
						t.Errorf("error %q does not name %s", msg, part)
					}
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseFormat(%q) = %v, %v; want %v",
					tt.in, got, err, tt.want)
			}
			if got.String() != tt.in {
				t.Errorf("%v.String() = %q, want %q", got, got.String(), tt.in)
			}
		})
	}
}

func TestNilLogger(t *testing.T) {
	var l *Logger
	l.Event("e", "a", 1)
	l.Warn("e")
	l.Error("e")
	l.SetWarnOutput(nil)
	if c := l.With("a", 1); c != nil {
		t.Errorf("nil.With = %v, want nil", c)
	}
	if n := l.Dropped(); n != 0 {
		t.Errorf("nil.Dropped = %d", n)
	}
	if err := l.Close(); err != nil {
		t.Errorf("nil.Close = %v", err)
	}
}
