package log

import (
	"strings"
	"testing"
)

// TestLogfmtRoundTrip writes awkward strings and reads them back with
// go-logfmt, a parser written independently of this package.
func TestLogfmtRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		value string
		want  string // what go-logfmt reads; the value itself if empty
	}{
		{"plain", "runner-busy", ""},
		{"spaces and equals", "a b=c d", ""},
		{"quotes", `he said "no"`, ""},
		{"backslashes", `C:\a\\b\`, ""},
		{"newlines", "one\ntwo\r\nthree", ""},
		{"tabs and form feeds", "\t\f\b", ""},
		{"unicode", "日本語 é ✓ 🎉", ""},
		{"controls", "\x00\a\v\x1b\x7f", ""},
		{"non-printable", "\u0085\u200b\u2028\ufeff\U000e0001", ""},
		{"invalid utf-8", "a\xffb\xc3", "a\ufffdb\ufffd"},
		{"long", strings.Repeat("x\"y\n", 5000), ""},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, buf := newTestLogger(Logfmt)
			l.Event("e", "v", tt.value, "after", 1)

			if n := strings.Count(buf.String(), "\n"); n != 1 {
				t.Fatalf("%d newlines in %q", n, buf)
			}
			recs := decodeLogfmtLines(t, buf.String())
			want := []pair{{testStamp, ""}, {"e", ""}, {"v", tt.value}, {"after", "1"}}
			if tt.want != "" {
				want[2].value = tt.want
			}
			if len(recs) != 1 || len(recs[0]) != len(want) {
				t.Fatalf("records %q, want one like %q", recs, want)
			}
			for i := range want {
				if recs[0][i] != want[i] {
					t.Errorf("pair %d = %q, want %q", i, recs[0][i], want[i])
				}
			}
		})
	}
}
