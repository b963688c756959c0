package log

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/go-logfmt/logfmt"
)

// The helper process is this test binary run again with -test.run selecting
// TestHelperProcess and these variables saying what to write.
const (
	envHelper = "RUNNERLOCK_LOG_TEST_HELPER" // "append" or "open"
	envPath   = "RUNNERLOCK_LOG_TEST_PATH"
	envWriter = "RUNNERLOCK_LOG_TEST_WRITER"
	envFormat = "RUNNERLOCK_LOG_TEST_FORMAT"
	envCount  = "RUNNERLOCK_LOG_TEST_COUNT"
)

const (
	writers         = 8
	eventsPerWriter = 2000
)

// padFor returns the long value of event seq from writer: its length varies
// from tens of bytes to 11 KiB, one event in ten longer than 4 KiB (a pipe's
// atomic limit and a page), and its letter depends on both numbers, so a
// torn or interleaved line cannot pass for a whole one.
func padFor(writer, seq int) string {
	n := 50 + seq*37%2000
	if seq%10 == 0 {
		n = 4097 + seq%7*1024
	}
	return strings.Repeat(string(rune('a'+(writer*7+seq)%26)), n)
}

func writeEvents(l *Logger, writer, count int) {
	w := l.With("writer", writer)
	for seq := range count {
		w.Event("append", "seq", seq, "pad", padFor(writer, seq), "quote", "a \"b\"\nc")
	}
}

// TestHelperProcess is not a test: it is the body of the processes that
// TestConcurrentProcesses and TestOpenErrors start.
func TestHelperProcess(t *testing.T) {
	switch os.Getenv(envHelper) {
	case "append":
		appendHelper(t)
	case "open":
		openHelper(t, os.Getenv(envPath))
	}
}

func appendHelper(t *testing.T) {
	f, err := ParseFormat(os.Getenv(envFormat))
	if err != nil {
		t.Fatal(err)
	}
	writer, _ := strconv.Atoi(os.Getenv(envWriter))
	count, _ := strconv.Atoi(os.Getenv(envCount))

	l, err := Open(os.Getenv(envPath), f)
	if err != nil {
		t.Fatal(err)
	}
	writeEvents(l, writer, count)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if n := l.Dropped(); n != 0 {
		t.Fatalf("dropped %d events", n)
	}
}

// TestConcurrentProcesses has separate processes, half writing logfmt and
// half JSON, append to one file, and checks that every line is whole.
func TestConcurrentProcesses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.log")

	var cmds []*exec.Cmd
	for w := range writers {
		format := "logfmt"
		if w%2 == 1 {
			format = "json"
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(),
			envHelper+"=append", envPath+"="+path, envFormat+"="+format,
			envWriter+"="+strconv.Itoa(w), envCount+"="+strconv.Itoa(eventsPerWriter))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("writer %d said:\n%s", w, out.String())
			}
		})
		cmds = append(cmds, cmd)
	}
	for w, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Errorf("writer %d: %v", w, err)
		}
	}

	checkEvents(t, path, writers, eventsPerWriter)
}

// TestConcurrentGoroutines has goroutines of one process write to one file,
// through one shared Logger or through a Logger each.
func TestConcurrentGoroutines(t *testing.T) {
	tests := []struct {
		name   string
		shared bool
		format Format
	}{
		{"shared logger logfmt", true, Logfmt},
		{"shared logger json", true, JSON},
		{"logger per goroutine logfmt", false, Logfmt},
		{"logger per goroutine json", false, JSON},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "events.log")
			open := func() *Logger {
				l, err := Open(path, tt.format)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
				return l
			}
			shared := open()

			var wg sync.WaitGroup
			for w := range writers {
				l := shared
				if !tt.shared {
					l = open()
				}
				wg.Go(func() { writeEvents(l, w, eventsPerWriter) })
			}
			wg.Wait()

			checkEvents(t, path, writers, eventsPerWriter)
		})
	}
}

// checkEvents reads the file at path and checks that it holds exactly count
// whole events from each of nwriters writers, each line in logfmt or JSON.
func checkEvents(t *testing.T, path string, nwriters, count int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) == 0 || data[len(data)-1] != '\n' {
		t.Fatalf("%s does not end with a newline", path)
	}

	seen := make([][]bool, nwriters)
	for w := range seen {
		seen[w] = make([]bool, count)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	lines := 0
	for sc.Scan() {
		lines++
		w, seq, err := parseEvent(sc.Bytes())
		if err != nil {
			t.Fatalf("line %d: %v\n%.300q", lines, err, sc.Bytes())
		}
		if w < 0 || w >= nwriters || seq < 0 || seq >= count || seen[w][seq] {
			t.Fatalf("line %d: unexpected or repeated writer=%d seq=%d", lines, w, seq)
		}
		seen[w][seq] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if want := nwriters * count; lines != want {
		t.Fatalf("%d lines, want %d", lines, want)
	}
}

// parseEvent checks that line is one whole append event and returns its
// writer and sequence number.
func parseEvent(line []byte) (writer, seq int, err error) {
	fields := map[string]string{}
	if line[0] == '{' {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			return 0, 0, err
		}
		for k, v := range m {
			fields[k] = fmt.Sprint(v)
		}
		if fields["event"] != "append" || fields["level"] != "info" {
			return 0, 0, fmt.Errorf("not an append event")
		}
	} else {
		dec := logfmt.NewDecoderSize(bytes.NewReader(line), len(line)+1)
		n := 0
		for dec.ScanRecord() {
			n++
			for dec.ScanKeyval() {
				fields[string(dec.Key())] = string(dec.Value())
			}
		}
		if err := dec.Err(); err != nil {
			return 0, 0, err
		}
		if _, ok := fields["append"]; n != 1 || !ok {
			return 0, 0, fmt.Errorf("not one append event")
		}
	}

	writer, err = strconv.Atoi(fields["writer"])
	if err != nil {
		return 0, 0, err
	}
	seq, err = strconv.Atoi(fields["seq"])
	if err != nil {
		return 0, 0, err
	}
	if fields["pad"] != padFor(writer, seq) || fields["quote"] != "a \"b\"\nc" {
		return 0, 0, fmt.Errorf("writer=%d seq=%d: values damaged", writer, seq)
	}
	return writer, seq, nil
}
