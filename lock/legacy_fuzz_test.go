package lock

import (
	"bytes"
	"strconv"
	"testing"
)

// FuzzParsePID: whatever a legacy hook (or anyone) left in PATH/pid,
// parsePID never panics, and it accepts only what a shell's `echo $$`
// writes for a pid that can exist and is not ours: a canonical decimal in
// 1..pidMax-1, around white space, within maxPIDFile bytes. Everything
// else is refused with a reason.
func FuzzParsePID(f *testing.F) {
	for _, s := range []string{"4242\n", "", " \n", "0", "-1", "007", "4194304", "abc",
		"12 34", "99999999999999999999", "\x00", "+5", "1e3", "0x10", "\t77\r\n"} {
		f.Add([]byte(s), 4242, 32768)
	}
	f.Fuzz(func(t *testing.T, b []byte, self, pidMax int) {
		if pidMax < 2 {
			pidMax = 2
		}
		pid, reason := parsePID(b, self, pidMax)
		if pid == 0 {
			if reason == "" {
				t.Fatalf("refused %q without a reason", b)
			}
			return
		}
		if reason != "" {
			t.Fatalf("accepted %q as %d with a reason %q", b, pid, reason)
		}
		s := string(bytes.TrimSpace(b))
		if len(b) > maxPIDFile || pid <= 0 || pid >= pidMax || pid == self ||
			s != strconv.Itoa(pid) {
			t.Fatalf("accepted %q as pid %d (self %d, pid_max %d)", b, pid, self, pidMax)
		}
	})
}
