package hook

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzReadInput: whatever a Stop hook sends, ReadInput never panics, never
// hangs, and either refuses it as bad input or accepts an object with a
// non-empty session_id within the caps, whose Raw holds exactly what was
// read (the bytes handed on to the job), and that decodes to the same id.
func FuzzReadInput(f *testing.F) {
	for _, dir := range []string{fixtures, filepath.Join(fixtures, "bad")} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && !e.IsDir() {
				f.Add(b)
			}
		}
	}
	f.Add([]byte(`{"session_id":"a"}` + "\n" + `{"session_id":"b"}`))
	f.Add([]byte("\xef\xbb\xbf{\"session_id\":\"bom\"}"))
	f.Add([]byte(`{"session_id":"x","session_id":"y"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := ReadInput(bytes.NewReader(data), ReadOptions{MaxBytes: 4096,
			Deadline: time.Second})
		if err != nil {
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Fatalf("error %v is not an *InputError", err)
			}
			return
		}
		if in.SessionID == "" || len(in.SessionID) > MaxSessionID {
			t.Fatalf("accepted session_id %q", in.SessionID)
		}
		if len(in.Raw) > 4096 || !bytes.HasPrefix(data, in.Raw) {
			t.Fatalf("Raw is not a prefix of the input within the cap: %q", in.Raw)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(in.Raw, &obj); err != nil {
			t.Fatalf("accepted input that is not one JSON object: %v", err)
		}
		var id string
		if err := json.Unmarshal(obj["session_id"], &id); err != nil || id != in.SessionID {
			t.Fatalf("session_id %q, but the object says %s", in.SessionID, obj["session_id"])
		}
	})
}
