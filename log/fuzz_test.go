package log

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/go-logfmt/logfmt"
)

// FuzzLogfmtRoundTrip checks, for any key and value, that the event is one
// line and that go-logfmt reads back the sanitised key and the value (with
// each byte of invalid UTF-8 read as U+FFFD), and that the quoted value is a
// Go string literal of the same text.
func FuzzLogfmtRoundTrip(f *testing.F) {
	f.Add("reason", "runner-busy")
	f.Add("a b", "x\ny\"z\\")
	f.Add("", "\a\v\x7f\xff")

	f.Fuzz(func(t *testing.T, key, value string) {
		l, buf := newTestLogger(Logfmt)
		l.Event("fuzz", key, value)
		line := buf.String()

		if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
			t.Fatalf("not exactly one line: %q", line)
		}
		if strings.ContainsRune(line, '\r') {
			t.Fatalf("raw carriage return in %q", line)
		}

		wantKey := expectedKey(key)
		wantValue := string([]rune(value))

		dec := logfmt.NewDecoderSize(strings.NewReader(line), len(line)+1)
		var got []pair
		for dec.ScanRecord() {
			for dec.ScanKeyval() {
				got = append(got, pair{string(dec.Key()), string(dec.Value())})
			}
		}
		if err := dec.Err(); err != nil {
			t.Fatalf("go-logfmt cannot parse %q: %v", line, err)
		}
		want := []pair{{testStamp, ""}, {"fuzz", ""}, {wantKey, wantValue}}
		if len(got) != len(want) {
			t.Fatalf("parsed %q from %q, want %q", got, line, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("pair %d = %q, want %q (line %q)",
					i, got[i], want[i], line)
			}
		}

		quoted := strings.TrimSuffix(line, "\n")
		quoted = quoted[len(testStamp+" fuzz "+wantKey+"="):]
		back, err := strconv.Unquote(quoted)
		if err != nil || back != wantValue {
			t.Fatalf("strconv.Unquote(%s) = %q, %v; want %q",
				quoted, back, err, wantValue)
		}
	})
}

// expectedKey restates the key rule of Event: each character outside
// [A-Za-z0-9_.-] becomes "_", "" becomes "_", and time, level and event get
// a leading "_".
func expectedKey(key string) string {
	const allowed = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"
	var b strings.Builder
	for _, r := range key {
		if r != utf8.RuneError && strings.ContainsRune(allowed, r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	switch k := b.String(); k {
	case "":
		return "_"
	case "time", "level", "event":
		return "_" + k
	default:
		return k
	}
}
