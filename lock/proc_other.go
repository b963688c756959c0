//go:build !linux

package lock

import (
	"errors"
	"os"
)

var errNoProc = errors.New("process facts need Linux's /proc")

// Self returns the calling process's identity. Outside Linux only the pid
// is known, so no recorded process is ever judged dead there.
func Self() Identity { return Identity{PID: os.Getpid()} }

// Judge says Unknown outside Linux: there is no start time to check a pid
// against, and nothing is reclaimed without proof.
func Judge(Identity) Liveness { return Unknown }

// Holders needs /proc/PID/fdinfo, which only Linux has.
func Holders(string) ([]int, error) { return nil, errNoProc }

// KernelLocked needs /proc/locks, which only Linux has.
func KernelLocked(string) (bool, error) { return false, errNoProc }

// RunOf needs /proc/PID/environ, which only Linux has.
func RunOf(int) string { return "" }
