package log

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/go-logfmt/logfmt"
)

// emitAll writes the same three events, with every kind of value, to l.
func emitAll(l *Logger) {
	run := l.With("run", "r-1", "session", "3f1c")
	run.Event("skip", "reason", "runner-busy", "holder_pid", 4242, "stuck", true)
	run.Warn("timeout", "after", 1500*time.Millisecond, "limit", 2.5,
		"at", testTime.Add(time.Hour), "pids", []int{12, 34}, "names", []string{"a", "b"})
	run.Error("error", "err", errors.New("disk \"full\"\n"), "code", uint8(28),
		"none", nil, "nan", math.NaN(), "odd")
}

// A pair is one key and value of a decoded line, the value as text.
type pair struct{ key, value string }

// decodeJSONLine returns the fields of one JSON object in the order they
// appear, each value as its text: strings unquoted, numbers as written,
// arrays with their elements joined by commas. It checks each value's JSON
// type against wantTypes, when that names the key.
func decodeJSONLine(t *testing.T, line []byte, wantTypes map[string]string) []pair {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.UseNumber()

	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("line %q does not start an object: %v %v", line, tok, err)
	}
	var pairs []pair
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		key := tok.(string)

		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			t.Fatalf("line %q, key %s: %v", line, key, err)
		}
		var v any
		rd := json.NewDecoder(bytes.NewReader(raw))
		rd.UseNumber()
		if err := rd.Decode(&v); err != nil {
			t.Fatalf("line %q, key %s: %v", line, key, err)
		}

		typ, text := jsonText(v)
		if want, ok := wantTypes[key]; ok && want != typ {
			t.Errorf("key %s: JSON type %s, want %s (line %s)", key, typ, want, line)
		}
		pairs = append(pairs, pair{key, text})
	}
	if _, err := dec.Token(); err != nil {
		t.Fatalf("line %q: %v", line, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Fatalf("line %q: more than one object", line)
	}
	return pairs
}

func jsonText(v any) (typ, text string) {
	switch v := v.(type) {
	case string:
		return "string", v
	case json.Number:
		return "number", v.String()
	case bool:
		return "bool", fmt.Sprint(v)
	case nil:
		return "null", "null"
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			_, parts[i] = jsonText(e)
		}
		return "array", strings.Join(parts, ",")
	}
	return fmt.Sprintf("%T", v), fmt.Sprint(v)
}

// decodeLogfmtLines parses text with go-logfmt, one record a line.
func decodeLogfmtLines(t *testing.T, text string) [][]pair {
	t.Helper()
	var records [][]pair
	dec := logfmt.NewDecoderSize(strings.NewReader(text), 1<<20)
	for dec.ScanRecord() {
		var rec []pair
		for dec.ScanKeyval() {
			rec = append(rec, pair{string(dec.Key()), string(dec.Value())})
		}
		records = append(records, rec)
	}
	if err := dec.Err(); err != nil {
		t.Fatalf("go-logfmt cannot parse %q: %v", text, err)
	}
	return records
}

func TestJSONFields(t *testing.T) {
	l, buf := newTestLogger(JSON)
	emitAll(l)

	wantTypes := map[string]string{
		"time": "string", "level": "string", "event": "string",
		"run": "string", "reason": "string", "holder_pid": "number", "stuck": "bool",
		"after": "string", "limit": "number", "at": "string", "pids": "array",
		"names": "array", "err": "string", "code": "number", "none": "null",
		"nan": "string", "odd": "string",
	}
	want := [][]pair{
		{{"time", testStamp}, {"level", "info"}, {"event", "skip"},
			{"run", "r-1"}, {"session", "3f1c"},
			{"reason", "runner-busy"}, {"holder_pid", "4242"}, {"stuck", "true"}},
		{{"time", testStamp}, {"level", "warn"}, {"event", "timeout"},
			{"run", "r-1"}, {"session", "3f1c"},
			{"after", "1.5s"}, {"limit", "2.5"}, {"at", "2026-12-03T10:55:02.123Z"},
			{"pids", "12,34"}, {"names", "a,b"}},
		{{"time", testStamp}, {"level", "error"}, {"event", "error"},
			{"run", "r-1"}, {"session", "3f1c"},
			{"err", "disk \"full\"\n"}, {"code", "28"}, {"none", "null"},
			{"nan", "NaN"}, {"odd", "!MISSING"}},
	}

	lines := bytes.SplitAfter(buf.Bytes(), []byte("\n"))
	if last := lines[len(lines)-1]; len(last) != 0 {
		t.Fatalf("output does not end with a newline: %q", last)
	}
	lines = lines[:len(lines)-1]
	if len(lines) != len(want) {
		t.Fatalf("got %d lines, want %d:\n%s", len(lines), len(want), buf)
	}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("line %d %q: %v", i, line, err)
		}
		if got := decodeJSONLine(t, line, wantTypes); !reflect.DeepEqual(got, want[i]) {
			t.Errorf("line %d:\ngot  %v\nwant %v", i, got, want[i])
		}
	}
}

// TestFormatsAgree checks that logfmt and JSON carry the same fields in the
// same order and with the same values, the logfmt line read by go-logfmt.
func TestFormatsAgree(t *testing.T) {
	lj, jbuf := newTestLogger(JSON)
	ll, lbuf := newTestLogger(Logfmt)
	emitAll(lj)
	emitAll(ll)

	records := decodeLogfmtLines(t, lbuf.String())
	jlines := bytes.Split(bytes.TrimSuffix(jbuf.Bytes(), []byte("\n")), []byte("\n"))
	if len(records) != len(jlines) {
		t.Fatalf("%d logfmt records, %d JSON lines", len(records), len(jlines))
	}

	for i, rec := range records {
		js := decodeJSONLine(t, jlines[i], nil)

		// logfmt puts time and name first as bare words, and has no level
		// pair for info events; rewrite it into JSON's shape.
		if len(rec) < 2 || rec[0].value != "" || rec[1].value != "" {
			t.Fatalf("record %d does not start with time and name: %v", i, rec)
		}
		shaped := []pair{{"time", rec[0].key}}
		rest := rec[2:]
		if len(rest) > 0 && rest[0].key == "level" {
			shaped = append(shaped, rest[0])
			rest = rest[1:]
		} else {
			shaped = append(shaped, pair{"level", "info"})
		}
		shaped = append(shaped, pair{"event", rec[1].key})
		shaped = append(shaped, rest...)

		if !reflect.DeepEqual(shaped, js) {
			t.Errorf("event %d differs:\nlogfmt %v\njson   %v", i, shaped, js)
		}
	}
}
