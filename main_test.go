package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The command line's refusals: each gives its status and one error line
// with the tool's prefix, and takes no lock.
func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	lockPath := filepath.Join(dir, "run.lock")
	cases := []struct {
		name string
		args []string
		want int
		msg  string
	}{
		{"bad wait", []string{"run", "--lock", lockPath, "-w", "banana", "--", "true"}, 64, "banana"},
		{"negative timeout", []string{"run", "--lock", lockPath, "--timeout", "-1s", "--", "true"},
			64, "negative"},
		{"zero grace", []string{"run", "--lock", lockPath, "--grace", "0s", "--", "true"}, 64,
			"--grace"},
		{"bad grace", []string{"run", "--lock", lockPath, "--grace", "10", "--", "true"}, 64, "10"},
		{"no-wait and wait", []string{"run", "--lock", lockPath, "-n", "-w", "1s", "--", "true"},
			64, "--no-wait and --wait"},
		{"busy exit out of range", []string{"run", "--lock", lockPath, "-E", "300", "--", "true"},
			64, "300"},
		{"no command", []string{"run", "--lock", lockPath}, 64, "no command"},
		{"unknown flag", []string{"run", "--lock", lockPath, "--frobnicate", "--", "true"}, 64,
			"frobnicate"},
		{"unknown command", []string{"frobnicate"}, 64, "frobnicate"},
		{"bad log format", []string{"run", "--lock", lockPath, "--log-format", "xml", "--", "true"},
			64, "xml"},
		{"empty lock path", []string{"run", "--lock", "", "--", "true"}, 64, "empty"},
		{"status with arguments", []string{"status", "--lock", lockPath, "extra"}, 64, "extra"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			got := runMain(append([]string{"runnerlock"}, c.args...), &stdout, &stderr)
			if got != c.want {
				t.Fatalf("exit %d, want %d; stderr:\n%s", got, c.want, stderr.String())
			}
			first, _, _ := strings.Cut(stderr.String(), "\n")
			if !strings.HasPrefix(first, "runnerlock: error: ") || !strings.Contains(first, c.msg) {
				t.Errorf("first stderr line %q should be an error naming %q", first, c.msg)
			}
			if strings.Count(stderr.String(), "runnerlock: error:") != 1 {
				t.Errorf("want exactly one error line, got:\n%s", stderr.String())
			}
			if _, err := os.Lstat(lockPath); err == nil {
				t.Errorf("a refused command created the lock file")
			}
		})
	}
}

// Global flags work before the command and after its name; after wins.
func TestGlobalFlagsAfterCommand(t *testing.T) {
	dir := t.TempDir()
	before := filepath.Join(dir, "before.lock")
	after := filepath.Join(dir, "after.lock")
	var stdout, stderr bytes.Buffer
	if got := runMain([]string{"runnerlock", "--lock", before, "status", "--json", "--lock", after},
		&stdout, &stderr); got != 0 {
		t.Fatalf("exit %d: %s", got, stderr.String())
	}
	if !strings.Contains(stdout.String(), after) {
		t.Fatalf("status used %q, want the path given after the command", stdout.String())
	}
	stdout.Reset()
	if got := runMain([]string{"runnerlock", "--lock", before, "status", "--json"},
		&stdout, &stderr); got != 0 || !strings.Contains(stdout.String(), before) {
		t.Fatalf("status used %q, want the path given before the command", stdout.String())
	}
}

func TestVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if got := runMain([]string{"runnerlock", "--version"}, &stdout, &stderr); got != 0 {
		t.Fatalf("exit %d", got)
	}
	if !strings.HasPrefix(stdout.String(), "runnerlock version ") {
		t.Fatalf("--version printed %q", stdout.String())
	}
}
