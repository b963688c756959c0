package hook

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fixtures is the shared folder of Stop-hook inputs, beside the repository.
const fixtures = "../../shared/fixtures/stop-hook"

func fixtureDir(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(fixtures); err != nil {
		t.Skipf("no fixtures at %s: %v", fixtures, err)
	}
	return fixtures
}

func readFile(t *testing.T, path string) (*Input, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return ReadInput(f, ReadOptions{})
}

func TestGoodFixturesDecodeAndKeepTheirBytes(t *testing.T) {
	dir := fixtureDir(t)
	paths, _ := filepath.Glob(filepath.Join(dir, "*.json"))
	if len(paths) == 0 {
		t.Fatal("no good fixtures")
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			want, _ := os.ReadFile(p)
			var m struct {
				SessionID string `json:"session_id"`
			}
			if err := json.Unmarshal(want, &m); err != nil {
				t.Fatal(err)
			}
			in, err := readFile(t, p)
			if err != nil {
				t.Fatalf("ReadInput: %v", err)
			}
			if in.SessionID != m.SessionID {
				t.Errorf("session %q, want %q", in.SessionID, m.SessionID)
			}
			if !bytes.Equal(in.Raw, want) {
				t.Errorf("Raw differs from the file:\n got %q\nwant %q", in.Raw, want)
			}
		})
	}
}

func TestFixtureFields(t *testing.T) {
	in, err := readFile(t, filepath.Join(fixtureDir(t), "stop-hook-active.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !in.StopHookActive || in.HookEventName != "Stop" || in.Cwd != "/srv/blog" ||
		!strings.HasSuffix(in.TranscriptPath, ".jsonl") {
		t.Errorf("fields not decoded: %+v", in)
	}
}

func TestBadFixturesAreRefused(t *testing.T) {
	dir := filepath.Join(fixtureDir(t), "bad")
	want := map[string]string{
		"array.json":           "want a JSON object, got an array",
		"empty.txt":            "stdin is empty",
		"not-json.txt":         "not valid JSON",
		"session-empty.json":   "session_id is empty",
		"session-missing.json": "session_id is missing",
		"session-number.json":  "session_id is a number, want a string",
		"truncated.json":       "cut short",
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		t.Run(e.Name(), func(t *testing.T) {
			_, err := readFile(t, filepath.Join(dir, e.Name()))
			checkInputError(t, err, want[e.Name()])
		})
	}
	for name := range want {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("fixture %s is gone: %v", name, err)
		}
	}
}

func checkInputError(t *testing.T, err error, reason string) {
	t.Helper()
	var ie *InputError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v (%T), want an *InputError", err, err)
	}
	if reason == "" {
		t.Fatalf("no expectation for %q", ie.Error())
	}
	if !strings.Contains(ie.Error(), reason) {
		t.Errorf("error %q, want it to say %q", ie.Error(), reason)
	}
	if strings.ContainsAny(ie.Error(), "\n\r") {
		t.Errorf("error %q is more than one line", ie.Error())
	}
}

func TestBadInputs(t *testing.T) {
	cases := []struct {
		name, input, reason string
	}{
		{"white space only", " \n\t\n", "stdin is empty"},
		{"null", "null", "want a JSON object, got null"},
		{"string", `"3f1c"`, "got a string"},
		{"number", "42", "got a number"},
		{"boolean", "true", "got a boolean"},
		{"session null", `{"session_id": null}`, "session_id is missing"},
		{"session key in another case", `{"Session_ID": "3f1c"}`, "session_id is missing"},
		{"session object", `{"session_id": {"id": "3f1c"}}`, "session_id is an object"},
		{"session array", `{"session_id": ["3f1c"]}`, "session_id is an array"},
		{"optional of the wrong type", `{"session_id": "3f1c", "stop_hook_active": "yes"}`,
			"stop_hook_active is a string, want true or false"},
		{"cwd a number", `{"session_id": "3f1c", "cwd": 7}`, "cwd is a number, want a string"},
		{"session with NUL", `{"session_id": "3f\u0000c"}`, "NUL"},
		{"session too long", `{"session_id": "` + strings.Repeat("x", MaxSessionID+1) + `"}`,
			"the limit is 1024"},
		{"trailing data", `{"session_id": "3f1c"} {"session_id": "other"}`, "after the JSON object"},
		{"trailing garbage", "{\"session_id\": \"3f1c\"}\nrm -rf /", "after the JSON object"},
		{"unclosed string", `{"session_id": "3f1c`, "cut short"},
		{"bad syntax", `{"session_id" "3f1c"}`, "not valid JSON"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadInput(strings.NewReader(tc.input), ReadOptions{})
			checkInputError(t, err, tc.reason)
		})
	}
}

func TestLenientDecoding(t *testing.T) {
	in, err := ReadInput(strings.NewReader(
		`{"session_id": "s1", "future_field": {"nested": [1, 2]}, "effort": null}`),
		ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if in.SessionID != "s1" || in.Cwd != "" || in.StopHookActive {
		t.Errorf("got %+v", in)
	}
}

// Keys match exactly, as jq and Python read them: a key that differs only
// in case is another field, not a second session_id overriding the first.
func TestKeysMatchExactly(t *testing.T) {
	in, err := ReadInput(strings.NewReader(
		`{"session_id": "s1", "SESSION_ID": "s2", "Cwd": 7, "Stop_Hook_Active": "yes"}`),
		ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if in.SessionID != "s1" || in.Cwd != "" || in.StopHookActive {
		t.Errorf("got %+v", in)
	}
	in, err = ReadInput(strings.NewReader(`{"session_id": "s1", "session_id": "s2"}`),
		ReadOptions{})
	if err != nil || in.SessionID != "s2" {
		t.Errorf("a key given twice: got %+v, %v; want the last value, s2", in, err)
	}
}

func TestSessionAtTheLimitIsAccepted(t *testing.T) {
	id := strings.Repeat("x", MaxSessionID)
	in, err := ReadInput(strings.NewReader(`{"session_id": "`+id+`"}`), ReadOptions{})
	if err != nil || in.SessionID != id {
		t.Fatalf("got %v", err)
	}
}

func TestInputOverTheCap(t *testing.T) {
	obj := `{"session_id": "s1"}`
	if _, err := ReadInput(strings.NewReader(obj), ReadOptions{MaxBytes: len(obj)}); err != nil {
		t.Errorf("an object of exactly the cap: %v", err)
	}
	_, err := ReadInput(strings.NewReader(obj), ReadOptions{MaxBytes: len(obj) - 1})
	checkInputError(t, err, "more than")

	// The real cap, through a file: 1 MiB of padding inside the object.
	big := `{"session_id": "s1", "pad": "` + strings.Repeat("a", MaxInput) + `"}`
	path := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(path, []byte(big), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = readFile(t, path)
	checkInputError(t, err, "more than 1 MiB")
}

func TestCompleteObjectWithoutEndOfInput(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close() // never closed before ReadInput returns
	obj := "{\"session_id\": \"s1\", \"cwd\": \"/x\"}\n"
	if _, err := w.WriteString(obj); err != nil {
		t.Fatal(err)
	}

	t0 := time.Now()
	in, err := ReadInput(r, ReadOptions{}) // the real 5 s deadline
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > time.Second {
		t.Errorf("took %s: it waited for the end of input", d)
	}
	if in.SessionID != "s1" || string(in.Raw) != obj {
		t.Errorf("got %q, raw %q", in.SessionID, in.Raw)
	}
}

func TestDeadlineOnAPipeNeverClosed(t *testing.T) {
	for _, partial := range []string{"", `{"session_id": "s1"`} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		w.WriteString(partial)
		const deadline = 150 * time.Millisecond
		t0 := time.Now()
		_, err = ReadInput(r, ReadOptions{Deadline: deadline})
		d := time.Since(t0)
		checkInputError(t, err, "within 150ms")
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("error %v does not wrap os.ErrDeadlineExceeded", err)
		}
		if d < deadline || d > deadline+time.Second {
			t.Errorf("gave up after %s, want just after %s", d, deadline)
		}
		if partial != "" && !strings.Contains(err.Error(), "19 bytes arrived") {
			t.Errorf("error %q does not say what arrived", err)
		}
		r.Close()
		w.Close()
	}
}

func TestDeadlineOnAPlainReader(t *testing.T) {
	r, w := io.Pipe() // not an *os.File: read on a goroutine
	defer w.Close()
	go w.Write([]byte(`{"session_id":`))
	t0 := time.Now()
	_, err := ReadInput(r, ReadOptions{Deadline: 100 * time.Millisecond})
	checkInputError(t, err, "within 100ms")
	if d := time.Since(t0); d > time.Second {
		t.Errorf("gave up after %s", d)
	}
}

func TestDefaultBounds(t *testing.T) {
	var o ReadOptions
	if o.deadline() != 5*time.Second || o.maxBytes() != 1<<20 {
		t.Errorf("defaults %s and %d bytes, want 5s and 1 MiB", o.deadline(), o.maxBytes())
	}
}
