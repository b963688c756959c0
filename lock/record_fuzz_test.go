package lock

import (
	"bytes"
	"testing"
)

// FuzzParseRecord: whatever sits in a lock file, parsing it never panics,
// and a record it accepts is one the tool could have written: marshalling
// it again and parsing that gives the same record, on one line, with a
// fence in range.
func FuzzParseRecord(f *testing.F) {
	f.Add([]byte(`{"pid":42,"pid_start":7,"run":"ab","since":"2026-12-03T09:55:02Z",` +
		`"fence":9,"state":"running"}`))
	f.Add([]byte(`{"pid":1,"fence":9007199254740991,"state":"released"}` + "\n" + `tail`))
	f.Add([]byte(`{"pid":1,"run":"x","fence":1e3}`))
	f.Add([]byte(`{"pid":1,"command":["sh","-c","\u2028"]}`))
	f.Add([]byte(""))
	f.Add([]byte("\x00\xff{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRecord(data)
		if err != nil {
			return
		}
		if r.Fence < 0 || r.Fence > MaxFence || r.PID < 0 {
			t.Fatalf("accepted out-of-range record %+v", r)
		}
		line := r.Marshal()
		if bytes.Count(line, []byte("\n")) != 1 || !bytes.HasPrefix(line, recordSignature) {
			t.Fatalf("marshalled record is not one signed line: %q", line)
		}
		again, err := ParseRecord(line)
		if err != nil {
			t.Fatalf("cannot parse our own record %q: %v", line, err)
		}
		if string(again.Marshal()) != string(line) {
			t.Fatalf("round trip changed the record:\n%s%s", line, again.Marshal())
		}
	})
}
