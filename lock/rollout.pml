/*
 * rollout.pml - a Promela model of the runnerlock rollout protocol.
 * Checked with spin by scripts/check-model.sh (see there for the runs).
 *
 * One lock path P (/tmp/buildbench-runner.lock) is shared by
 *   Runner   runnerlock: lock.Acquire (lock/lock.go), lock.tryFlock
 *            (lock/lock_unix.go), lock.judgeAndMigrate with
 *            lock.judgeLegacy, lock.migrateLegacy with lock.swapBack, and
 *            lock.settle (lock/legacy.go; the exchange itself is
 *            renameExchange in lock/legacy_linux.go);
 *   Legacy2  the legacy hook with a pid file and the kill -0 steal, as in
 *            scripts/legacy-hook.sh;
 *   Legacy1  the first legacy hook: bare mkdir, trap rm -rf (as in
 *            scripts/legacy-hook.sh --form1; -DFORM1_RMDIR: rmdir), no pid.
 * Any process may be killed hard (SIGKILL) before any of its steps, up to
 * MAXKILL kills in one execution: no trap runs, the kernel drops the
 * victim's flocks, its pid is dead from then on, and what it left on disk
 * stays (a lock directory with or without pid, a temp file).
 *
 * What P names is an inode: nothing, a directory (with or without `pid`),
 * or a regular file. Every mkdir/creat makes a fresh inode number, so the
 * "same inode?" checks (fstat vs lstat) compare real identities, and a
 * directory carried to another name by an exchange keeps its identity.
 *
 * THE PROPERTY, asserted at every entry into the critical section: a
 * runnerlock run is never inside together with another run (runnerlock or
 * legacy), unless the execution is EXCUSED (below). -DLEGACY_ONLY keeps only
 * Legacy2 hooks and asserts plain exclusion among them: spin must find the
 * old steal race there.
 *
 * The migration as built: lock.judgeAndMigrate judges (lock.judgeLegacy)
 * under the directory's flock, then re-checks that P still names it;
 * lock.migrateLegacy exchanges a locked temp file in and verifies the inode
 * it swapped out (swapping back if it is not the judged one); lock.settle
 * holds the new lock file for legacySettle and checks P still names it
 * before the run may start.
 *
 * EXCUSED. The kill -0 steal has a window of its own: between its
 * `[[ -f pid ]]` and its `rm -rf "$P"` a stealer may pause, and then it
 * deletes whatever P is by now. With two stealers that is the old race; with a runnerlock
 * migrating the same stale directory it is that race with runnerlock as the
 * second party. In an untimed model no protocol on runnerlock's side closes
 * it; under a timing assumption (that gap is shorter than a grace period)
 * one can. The events, and the excuse levels (-DEXCUSE=n):
 *   race     a legacy rm -rf (a stealer's, or a trap's) hit something
 *            other than the directory it was meant for (the one the
 *            stealer judged; the hook's own), and that directory had left P
 *            by no runnerlock's doing (another stealer took it, or its
 *            holder's trap removed it while the stealer was between its
 *            `[[ -f pid ]]` and its `kill -0`): the old steal race, which
 *            needs no runnerlock at all;
 *   misfire  a stealer's rm -rf hit something other than the directory it
 *            judged, also where a runnerlock had migrated that directory
 *            (runnerlock as the second stealer);
 *   window   a stealer removed the stale directory a runnerlock had judged
 *            and made a fresh one, and the runnerlock's exchange swapped
 *            that one out (its verify catches it). Until the exchange back,
 *            P names the temp file: the fresh holder's trap deletes it, a
 *            stealer's `cat pid` finds nothing there and takes the live
 *            holder for dead, a kill leaves the fresh directory hidden. The
 *            window is excused as a whole (lock.swapBack is not proved);
 *   EXCUSE=3 race, misfire, window (default): the steal's own window is
 *            excused, and nothing else may break exclusion;
 *   EXCUSE=2 race, window: needs lock.settle to stop runnerlock being the
 *            second stealer - it does not (a kill during the settle, or a
 *            cascade of legacy traps): expected to fail;
 *   EXCUSE=1 race only (default with -DGRACE);
 *   EXCUSE=0 nothing (-DSTRICT).
 * -DGRACE models a proposal for lock.migrateLegacy: before the exchange,
 * disarm the steal by removing the judged directory's pid file (a stealer
 * that looks later finds none and skips), then wait a grace period longer
 * than any stealer's gap (modelled: until no stealer is between its
 * `[[ -f pid ]]` and the end of its rm -rf), re-check, exchange. It passes
 * with EXCUSE=1.
 * -DNO_SETTLE drops lock.settle (the migration as first specified).
 * -DPLAIN_RENAME migrates by rm pid / rmdir / rename(2) instead of the
 * exchange and verify (expected to fail, under any excuse).
 * -DNO_RECHECK drops the re-check after judging (expected to fail; needs
 * three runnerlocks).
 * -DNOPRUNE keeps exploring executions after they are excused.
 *
 * Abstractions and limits (the README repeats them):
 *   - Age: a directory counts as older than --legacy-max-age only if every
 *     process that was alive when it last changed (mkdir, pid written or
 *     removed) has ended since. That is the assumption "every process lives
 *     shorter than --legacy-max-age"; where the model says aged, the real
 *     directory may still be young, which only adds behaviours.
 *   - Pid reuse, pid namespaces, EPERM, garbage pid files and extra files in
 *     the directory are not modelled: a dead pid stays dead, and
 *     lock.judgeLegacy's start-time check is taken as right.
 *   - flock is non-blocking (-n); busy ends the run. Each process makes one
 *     run; a runnerlock decides again at most MAXROUND times.
 *   - Timing enters only as the grace/settle assumption above (a stealer's
 *     gap is shorter than legacySettle), modelled as a wait.
 *   - Not modelled: --wait (waiting flocks, lock.waitLegacy), `runnerlock
 *     migrate` and rollback, the refusals (foreign owner, other entries),
 *     the holder record and reclaim; a runnerlock's CMD is the run itself
 *     (the kernel ends it with its supervisor).
 *   - A step is one system call or shell command, atomic. Some neighbouring
 *     steps are joined where that hides no behaviour: a successful flock
 *     with the inode check after it (a taken lock is a right mover); temp
 *     file creation with the exchange (nobody else knows T); the verify and
 *     the removal of the exchanged-out directory with it (T is private);
 *     the end of a legacy run with the first step of its trap (the run is
 *     taken to last longer, which can only add overlaps).
 *   - Legacy hooks follow scripts/legacy-hook.sh: the trap is set after the
 *     pid is written (a kill before runs no trap anyway); echo $$ > P/pid
 *     is one atomic write, and a failed one (P is no directory) is
 *     ignored; the steal is [[ -f pid ]], cat, kill -0, rm -rf, mkdir.
 */

#ifndef NR
#define NR 2            /* runnerlock processes */
#endif
#ifndef NL2
#define NL2 2           /* legacy hooks with pid file and kill -0 steal */
#endif
#ifndef NL1
#define NL1 1           /* legacy hooks, bare mkdir */
#endif
#ifdef LEGACY_ONLY
#undef NR
#undef NL1
#define NR 0
#define NL1 0
#define STRICT
#endif
#ifndef MAXKILL
#define MAXKILL 1       /* hard kills in one execution (NPROC: no bound) */
#endif
#ifndef MAXROUND
#define MAXROUND 2      /* decisions of one runnerlock before it gives up */
#endif
#ifndef INIT
#define INIT 9          /* P at the start: 0 nothing, 1 stale directory with a
                           dead pid, 2 aged directory without pid, 3 a lock
                           file; 9: each of them */
#endif

#define NPROC (NR + NL2 + NL1)     /* pids 1..NPROC: runners, form 2, form 1 */
#define GHOST (NPROC + 1)          /* the pid of a holder killed long ago */
#define MAXID 16                   /* inode numbers 1..MAXID-1; 0 = none */

#define NONE 0
#define DIR  1
#define FILE 2

byte P;                 /* inode named by the path, NONE if absent */
byte kind[MAXID];       /* DIR or FILE */
byte pidf[MAXID];       /* DIR: pid in its `pid` file, 0 = no pid file */
byte wit[MAXID];        /* DIR: processes alive when it last changed */
byte lk[MAXID];         /* holder of flock(LOCK_EX) on the inode, 0 = none */
byte nid = 1;           /* next fresh inode number */
byte alivem;            /* bit p: process p has started and not ended */
byte inflight;          /* bit p: stealer p is between its read and rm -rf */
byte inR, inL;          /* runs inside: runnerlock, legacy */
byte nkill;             /* hard kills so far */
int  stolen;            /* bit d: a stealer that judged dir d removed it */
int  rmoved;            /* bit d: a runnerlock's exchange moved d off P
                           (and did not put it back) */
bool misfire, race, window;            /* the excuses (see above) */

#define ISSTOLEN(d)  ((stolen >> (d)) & 1)
#define RMOVED(d)    ((rmoved >> (d)) & 1)
#define ALIVE(p)     ((alivem >> (p)) & 1)
#define START        alivem = alivem | (1 << me)
#define END          alivem = alivem & ~(1 << me)
#define TOUCH(d)     wit[d] = alivem             /* d's mtime changes now */
#define AGED(d)      ((wit[d] & alivem) == 0)    /* see "Age" above */

#ifndef EXCUSE
#if defined(STRICT)
#define EXCUSE 0
#elif defined(GRACE)
#define EXCUSE 1
#else
#define EXCUSE 3
#endif
#endif
#if EXCUSE == 0
#define EXCUSED      false
#elif EXCUSE == 1
#define EXCUSED      race
#elif EXCUSE == 2
#define EXCUSED      (race || window)
#else
#define EXCUSED      (race || misfire || window)
#endif

/* Once an execution is excused, nothing it does later counts: every step
   is guarded by GO and the search stops there (-DNOPRUNE: it goes on). */
#ifdef NOPRUNE
#define GO
#define GO_          true ->
#else
#define GO           !EXCUSED &&
#define GO_          !EXCUSED ->
#endif

#define NEWINODE(v, k) v = nid; nid++; assert(nid <= MAXID); kind[v] = k

/* Entering the critical section: the property. */
#define ENTER_R  assert(EXCUSED || (inR == 0 && inL == 0)); inR++; ins = true
#ifdef LEGACY_ONLY
#define ENTER_L  assert(EXCUSED || (inR == 0 && inL == 0)); inL++; ins = true
#else
#define ENTER_L  assert(EXCUSED || inR == 0); inL++; ins = true
#endif

/* A run ends: skip, or done after its release or its trap. A process that
   has ended keeps its slot in the state vector: RESET zeroes its locals. */
#define FINISH   END; RESET; goto dead
/* SIGKILL, possible before every step: an option of every `if` below. */
#define KILL     :: atomic { GO nkill < MAXKILL -> nkill++; CLEANUP; RESET; \
                             goto dead }

/* ================================================================== */
/* runnerlock                                                         */
/* ================================================================== */

/* decide again from the top, or give up busy after MAXROUND decisions */
#define RETRY    round++; if :: round < MAXROUND -> goto top :: else -> FINISH fi
/* SIGKILL: the kernel drops the flocks; a temp file stays where it is */
#define CLEANUP \
	if :: lk[fd] == me -> lk[fd] = 0 :: else fi; \
	if :: lk[dfd] == me -> lk[dfd] = 0 :: else fi; \
	if :: lk[t] == me -> lk[t] = 0 :: else fi; \
	if :: ins -> inR-- :: else fi; \
	END
#define RESET    fd = 0; dfd = 0; t = 0; tn = 0; x = 0; round = 0; ins = false

proctype Runner(byte me)
{
	byte fd;        /* the lock file's descriptor (its inode) */
	byte dfd;       /* the legacy directory's descriptor */
	byte t;         /* the temp file T made by lock.migrateLegacy */
	byte tn;        /* what the name T holds now */
	byte x, round;
	bool ins;

top:
	/* lock.Acquire: open(P, O_RDWR|O_CREAT|O_NOFOLLOW|O_CLOEXEC, 0600); on
	   EISDIR, open(P, O_RDONLY|O_DIRECTORY) (one step: if P changed in
	   between, the Go code starts over, which the retry here covers) */
	if
	KILL
	:: atomic { GO P == NONE -> START; NEWINODE(fd, FILE); P = fd }
	:: atomic { GO P != NONE && kind[P] == FILE -> START; fd = P }
	:: atomic { GO P != NONE && kind[P] == DIR -> START; dfd = P; goto legacy }
	fi;
	/* lock.tryFlock: flock(fd, LOCK_EX|LOCK_NB); then fstat(fd) against
	   lstat(P): does P still name the inode I locked? If not, release and
	   start over */
	if
	KILL
	:: atomic { GO lk[fd] != 0 -> fd = 0; FINISH }          /* busy: skip */
	:: atomic { GO lk[fd] == 0 && P == fd -> lk[fd] = me; ENTER_R; goto inside }
	:: atomic { GO lk[fd] == 0 && P != fd -> fd = 0; RETRY }
	fi;

legacy:
	/* lock.judgeAndMigrate: flock(LOCK_EX|LOCK_NB) on the directory
	   (serializes runnerlock processes; legacy hooks ignore it), open it
	   as dirfd (the same inode); readLegacyFacts: `pid` through dirfd,
	   kill(pid, 0), fstat(dirfd) for the age; lock.judgeLegacy decides */
	if
	KILL
	:: atomic { GO lk[dfd] != 0 -> dfd = 0; FINISH }        /* busy: skip */
	:: atomic { GO lk[dfd] == 0 &&
	            ((pidf[dfd] != 0 && !ALIVE(pidf[dfd]))      /* holder-dead */
	          || (pidf[dfd] == 0 && AGED(dfd)))             /* no-pid-aged */
	            -> lk[dfd] = me }                           /* stale */
	:: atomic { GO lk[dfd] == 0 &&
	            ((pidf[dfd] != 0 && ALIVE(pidf[dfd]))       /* legacy run */
	          || (pidf[dfd] == 0 && !AGED(dfd)))            /* young */
	            -> dfd = 0; FINISH }                        /* busy: skip */
	fi;
#ifdef GRACE
	/* lock.migrateLegacy (proposal): disarm the steal - unlinkat(dirfd,
	   "pid", 0): a kill -0 stealer that looks from now on finds no pid
	   file and skips (and other runnerlocks find a young directory) */
	if
	KILL
	:: atomic { GO_ if :: pidf[dfd] != 0 -> pidf[dfd] = 0; TOUCH(dfd)
	                  :: else fi }
	fi;
	/* ... and wait a grace period longer than a stealer's gap from its
	   [[ -f pid ]] to its rm -rf: every stealer that saw the pid file
	   before has done its rm -rf by then */
	if
	KILL
	:: atomic { GO inflight == 0 -> skip }
	fi;
#endif
#ifndef NO_RECHECK
	/* lock.judgeAndMigrate, after lock.judgeLegacy: pathNames - does
	   lstat(P) still give the directory I locked and judged? (else another
	   runnerlock migrated it, or it was removed: start over) */
	if
	KILL
	:: atomic { GO P == dfd -> skip }
	:: atomic { GO P != dfd -> lk[dfd] = 0; dfd = 0; RETRY }
	fi;
#endif
#ifndef PLAIN_RENAME
	/* lock.migrateLegacy: createMigrationFile T beside P (O_CREAT|O_EXCL|
	   O_NOFOLLOW, 0600) and tryFlock it; renameExchange(T, P) (renameat2
	   RENAME_EXCHANGE); verify: does fstatat(T) give the very directory I
	   judged? If so: unlinkat(dirfd, "pid"), rmdir(T), close dirfd: P is
	   my locked lock file */
	if
	KILL
	:: atomic { GO P == NONE -> RETRY }             /* ENOENT: start over */
	:: atomic { GO P != NONE && P == dfd ->
	            NEWINODE(t, FILE); lk[t] = me; P = t;          /* exchange */
	            rmoved = rmoved | (1 << dfd);
	            pidf[dfd] = 0; TOUCH(dfd); lk[dfd] = 0; dfd = 0;  /* remove */
	            fd = t; t = 0;
#ifdef NO_SETTLE
	            ENTER_R; goto inside
#else
	            goto settle
#endif
	          }
	:: atomic { GO P != NONE && P != dfd ->
	            NEWINODE(t, FILE); lk[t] = me; tn = P; P = t;  /* exchange */
	            rmoved = rmoved | (1 << tn);
	            /* the verify failed: only a stealer's removal of the judged
	               directory leads here; the swap window begins */
#ifndef NO_RECHECK
	            assert(ISSTOLEN(dfd) || EXCUSED);
#endif
	            if :: ISSTOLEN(dfd) -> window = true :: else fi }
	fi;
	/* lock.swapBack, the verify failed (a legacy hook replaced P):
	   renameExchange(T, P) back; if T then holds my file again, discard it
	   and decide again, else (P changed once more) give up with an error
	   and leave T; on ENOENT (my file was removed from P), put back what I
	   swapped out with renameat2(T, P, RENAME_NOREPLACE) and decide again
	   (if P was made again meanwhile, give up with an error) */
	if
	KILL
	:: atomic { GO P != NONE ->
	            x = P; P = tn; tn = x; x = 0;
	            rmoved = rmoved & ~(1 << P);        /* back where it was */
	            lk[t] = 0; lk[dfd] = 0; dfd = 0;
	            if
	            :: tn == t -> t = 0; tn = 0; RETRY     /* discard, again */
	            :: else -> FINISH                     /* error: T stays */
	            fi }
	:: atomic { GO P == NONE ->                     /* ENOENT */
	            P = tn; tn = 0;                       /* RENAME_NOREPLACE */
	            rmoved = rmoved & ~(1 << P);
	            lk[t] = 0; t = 0; lk[dfd] = 0; dfd = 0; RETRY }
	fi;
#else
	/* negative control: migrate by path instead of exchange and verify.
	   create and flock T; unlink("P/pid") */
	if
	KILL
	:: atomic { GO_ NEWINODE(t, FILE); lk[t] = me;
	            if :: P != NONE && kind[P] == DIR && pidf[P] != 0 ->
	                  pidf[P] = 0; TOUCH(P)
	               :: else fi }
	fi;
	/* rmdir("P") */
	if
	KILL
	:: atomic { GO_ if :: P != NONE && kind[P] == DIR && pidf[P] == 0 ->
	                     P = NONE
	                  :: else fi }
	fi;
	/* rename(T, P): replaces a file or nothing, fails on a directory */
	if
	KILL
	:: atomic { GO (P == NONE || kind[P] == FILE) ->
	            P = t; lk[dfd] = 0; dfd = 0; fd = t; t = 0;
	            ENTER_R; goto inside }
	:: atomic { GO P != NONE && kind[P] == DIR ->
	            lk[t] = 0; t = 0; lk[dfd] = 0; dfd = 0; RETRY }
	fi;
#endif
#ifndef NO_SETTLE
settle:
	/* lock.settle (from lock.takeLegacy): hold the freshly migrated lock
	   file, not yet handed out, for legacySettle (500ms) - modelled as:
	   until no stealer is between its [[ -f pid ]] and the end of its
	   rm -rf, i.e. that gap is shorter than legacySettle ... */
	if
	KILL
	:: atomic { GO inflight == 0 -> skip }
	fi;
	/* ... then Holder.StillHeld: lstat(P) against fstat(fd); if a stealer
	   removed the file meanwhile, release and start over */
	if
	KILL
	:: atomic { GO P == fd -> ENTER_R; goto inside }
	:: atomic { GO P != fd -> lk[fd] = 0; fd = 0; RETRY }
	fi;
#endif

inside:
	/* the run (CMD holds the locked descriptor); then lock release: close */
	if
	KILL
	:: atomic { GO_ inR--; ins = false; lk[fd] = 0; fd = 0; FINISH }
	fi;
dead:
	skip
}
#undef CLEANUP
#undef RESET

/* ================================================================== */
/* legacy hook with pid file (scripts/legacy-hook.sh):                */
/*   if ! mkdir "$P"; then                                            */
/*     [[ -f $P/pid ]] && ! kill -0 "$(cat "$P/pid")" || skip         */
/*     rm -rf "$P"; mkdir "$P" || skip                                */
/*   fi                                                               */
/*   echo $$ > "$P/pid"; trap 'rm -rf "$P"' EXIT; run                  */
/* ================================================================== */

/* SIGKILL: no trap; its directory (if any) stays as it is */
#define CLEANUP \
	if :: ins -> inL-- :: else fi; \
	inflight = inflight & ~(1 << me); \
	END
#define RESET    own = 0; jd = 0; pv = 0; ins = false; retried = false

/* rm -rf "$P", as GNU rm does it, in two steps: the contents (or a regular
   file itself), then rmdir by path. e: the directory this rm is meant for
   (a stealer: the one it judged; a trap: the hook's own); st: a stealer.
   Hitting anything else is a misfire (a stealer's) and a race when e left
   P by no runnerlock's doing (see EXCUSED) */
#define HIT(e, st) \
	if :: st -> misfire = true :: else fi; \
	if :: !RMOVED(e) -> race = true :: else fi
#define RMRF_1(e, st) \
	if \
	:: P == NONE -> skip \
	:: P != NONE && kind[P] == FILE -> HIT(e, st); P = NONE \
	:: P != NONE && kind[P] == DIR -> \
		if :: P != e -> HIT(e, st) :: else fi; \
		if :: pidf[P] != 0 -> pidf[P] = 0; TOUCH(P) :: else fi \
	fi
#define RMRF_2(e, st) \
	if \
	:: P != NONE && kind[P] == DIR && pidf[P] == 0 -> \
		if :: P != e -> HIT(e, st) \
		   :: P == e && st -> stolen = stolen | (1 << P) \
		   :: else fi; \
		P = NONE \
	:: else \
	fi

proctype Legacy2(byte me)
{
	byte own;       /* the directory it made */
	byte jd;        /* the directory whose dead pid it read */
	byte pv;        /* the pid it read */
	bool ins, retried;

mk:
	/* legacy-hook.sh: mkdir "$P" */
	if
	KILL
	:: atomic { GO P == NONE -> START; NEWINODE(own, DIR); TOUCH(own);
	            P = own; goto pidw }
	:: atomic { GO P != NONE && retried -> START; FINISH }      /* skip */
	:: atomic { GO P != NONE && !retried -> START; retried = true }
	fi;
	/* legacy-hook.sh: [[ -f $P/pid ]]; no pid file (or P is a regular
	   file: ENOTDIR): skip. The directory seen here is the one judged. */
	if
	KILL
	:: atomic { GO P != NONE && kind[P] == DIR && pidf[P] != 0 ->
	            jd = P; inflight = inflight | (1 << me) }
	:: atomic { GO !(P != NONE && kind[P] == DIR && pidf[P] != 0) ->
	            FINISH }                                        /* skip */
	fi;
	/* legacy-hook.sh: $(cat "$P/pid"), read by path: empty if the file
	   is gone by now */
	if
	KILL
	:: atomic { GO_ if :: P != NONE && kind[P] == DIR -> pv = pidf[P]
	                  :: else -> pv = 0
	               fi }
	fi;
	/* legacy-hook.sh: kill -0 "$pid" succeeds: skip (kill -0 "" fails, so
	   a pid file gone since the test counts as dead) */
	if
	KILL
	:: atomic { GO ALIVE(pv) -> inflight = inflight & ~(1 << me); FINISH }
	:: atomic { GO !ALIVE(pv) -> skip }
	fi;
	/* legacy-hook.sh: rm -rf "$P" (contents) */
	if
	KILL
	:: atomic { GO_ RMRF_1(jd, true) }
	fi;
	/* rm -rf: rmdir "$P"; then mkdir "$P" once more */
	if
	KILL
	:: atomic { GO_ RMRF_2(jd, true); jd = 0; inflight = inflight & ~(1 << me);
	            goto mk }
	fi;

pidw:
	/* legacy-hook.sh: echo $$ > "$P/pid"; trap 'rm -rf "$P"' EXIT; the
	   run begins */
	if
	KILL
	:: atomic { GO_ if :: P != NONE && kind[P] == DIR -> pidf[P] = me; TOUCH(P)
	                  :: else fi;
	            ENTER_L }
	fi;
	/* the run ends; trap: rm -rf "$P" (contents) */
	if
	KILL
	:: atomic { GO_ inL--; ins = false; RMRF_1(own, false) }
	fi;
	/* trap: rm -rf: rmdir "$P" */
	if
	KILL
	:: atomic { GO_ RMRF_2(own, false); FINISH }
	fi;
dead:
	skip
}
#undef CLEANUP
#undef RESET

/* ================================================================== */
/* legacy hook, bare form (scripts/legacy-hook.sh --form1):           */
/*   mkdir "$P" || skip; trap 'rm -rf "$P"' EXIT; run                  */
/* (-DFORM1_RMDIR: trap 'rmdir "$P"' EXIT instead)                     */
/* ================================================================== */
#define CLEANUP \
	if :: ins -> inL-- :: else fi; \
	END
#define RESET    own = 0; ins = false

proctype Legacy1(byte me)
{
	byte own;
	bool ins;

	/* mkdir "$P"; the run begins */
	if
	KILL
	:: atomic { GO P == NONE -> START; NEWINODE(own, DIR); TOUCH(own);
	            P = own; ENTER_L }
	:: atomic { GO P != NONE -> START; FINISH }                 /* skip */
	fi;
#ifdef FORM1_RMDIR
	/* the run ends; trap: rmdir "$P" (fails on a file, or on a directory
	   that holds a pid file) */
	if
	KILL
	:: atomic { GO_ inL--; ins = false;
	            if :: P != NONE && kind[P] == DIR && pidf[P] == 0 ->
	                  if :: P != own -> HIT(own, false) :: else fi; P = NONE
	               :: else fi;
	            FINISH }
	fi;
#else
	/* the run ends; trap: rm -rf "$P" (contents) */
	if
	KILL
	:: atomic { GO_ inL--; ins = false; RMRF_1(own, false) }
	fi;
	/* trap: rm -rf: rmdir "$P" */
	if
	KILL
	:: atomic { GO_ RMRF_2(own, false); FINISH }
	fi;
#endif
dead:
	skip
}
#undef CLEANUP
#undef RESET

init {
	byte i, d;
	atomic {
		if
		:: INIT == 0 || INIT == 9 -> skip                       /* nothing */
		:: INIT == 1 || INIT == 9 ->  /* a holder killed long ago */
			NEWINODE(d, DIR); pidf[d] = GHOST; P = d
		:: INIT == 2 || INIT == 9 ->  /* aged, without pid */
			NEWINODE(d, DIR); P = d
		:: INIT == 3 || INIT == 9 ->  /* already migrated */
			NEWINODE(d, FILE); P = d
		fi;
		d = 0;
		i = 1;
		do
		:: i <= NR -> run Runner(i); i++
		:: i > NR && i <= NR + NL2 -> run Legacy2(i); i++
		:: i > NR + NL2 && i <= NPROC -> run Legacy1(i); i++
		:: else -> break
		od
	}
}
