package lock

// Identity names a process across time: a pid alone is reused, so the
// process is the pid together with its start time, judged only on the boot
// and in the pid namespace where the pid was read.
type Identity struct {
	PID    int
	Start  uint64 // clock ticks after boot, /proc/PID/stat field 22
	BootID string
	PIDNS  string
}

// Liveness is what can be said of a recorded process.
type Liveness int

const (
	// Unknown: the facts could not be read, or the process was recorded on
	// another boot or in another pid namespace, where our pids mean nothing.
	// Callers treat it as alive: nothing is ever reclaimed without proof.
	Unknown Liveness = iota
	// Alive: the pid exists and started when the record says.
	Alive
	// Dead: proven gone (no such pid, a zombie, or the pid now belongs to a
	// process that started at another time).
	Dead
)

func (l Liveness) String() string {
	switch l {
	case Alive:
		return "alive"
	case Dead:
		return "dead"
	}
	return "unknown"
}

// NewRecord returns a running record for the calling process as holder.
func NewRecord(run, session string, command []string) Record {
	id := Self()
	return Record{
		PID:      id.PID,
		PIDStart: id.Start,
		Run:      run,
		Session:  session,
		Command:  command,
		Host:     hostName(),
		BootID:   id.BootID,
		PIDNS:    id.PIDNS,
		State:    StateRunning,
	}
}

// Supervisor returns the identity of the record's supervisor.
func (r Record) Supervisor() Identity {
	return Identity{PID: r.PID, Start: r.PIDStart, BootID: r.BootID, PIDNS: r.PIDNS}
}

// Orphaned reports whether the record says running for a supervisor that is
// proven dead: its run ended without a terminal event, and whatever still
// holds the lock is that run's leftovers (or a new holder that has not yet
// written its own record, which callers must tell apart by run id).
func (r Record) Orphaned() bool {
	return r.State == StateRunning && r.PID > 0 && Judge(r.Supervisor()) == Dead
}
