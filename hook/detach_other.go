//go:build !linux

package hook

import (
	"context"
	"errors"

	"github.com/buildbench/runnerlock/lock"
	"github.com/buildbench/runnerlock/lock/supervise"
)

// errNoDetach: the hand-off needs memfds, pidfds and /proc, which only
// Linux has, so outside Linux the hook refuses instead of running unlocked.
var errNoDetach = errors.New("hook: detached runs need Linux")

func (cfg *Config) detach(*Input, *lock.Holder) (Outcome, error) {
	return Outcome{}, errNoDetach
}

// Supervise is the detached supervisor's side of the hand-off; outside
// Linux there is none (see errNoDetach).
func Supervise(context.Context, *Config, Mode) (supervise.Result, error) {
	return supervise.Result{}, errNoDetach
}
