package log

import (
	"path/filepath"
	"testing"
	"time"
)

func benchmarkEvent(b *testing.B, f Format) {
	l, err := Open(filepath.Join(b.TempDir(), "events.log"), f)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	run := l.With("run", "0190f3a4-7c2e", "session", "3f1c")

	b.ReportAllocs()
	for b.Loop() {
		run.Event("skip", "reason", "runner-busy", "holder_pid", 4242, "stuck", true,
			"age", 90*time.Second)
	}
	if n := l.Dropped(); n != 0 {
		b.Fatalf("dropped %d events", n)
	}
}

func BenchmarkEventLogfmt(b *testing.B) { benchmarkEvent(b, Logfmt) }

func BenchmarkEventJSON(b *testing.B) { benchmarkEvent(b, JSON) }
