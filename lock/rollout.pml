/*
 * rollout.pml - a Promela model of the runnerlock rollout protocol, checked
 * with spin (scripts/check-model.sh runs it).
 *
 * One lock path P (/tmp/buildbench-runner.lock) is shared by
 *   - runnerlock processes  (proctype Runner):  lock.Acquire, lock.tryFlock,
 *     lock.judgeLegacy, lock.migrateLegacy;
 *   - legacy hooks of form 2 (proctype Legacy2): mkdir, pid file, trap
 *     `rm -rf`, and the kill -0 steal (scripts/legacy-hook.sh);
 *   - legacy hooks of form 1 (proctype Legacy1): bare mkdir, trap `rmdir`.
 * A bounded number of hard kills (SIGKILL) may hit any process at any step:
 * no trap runs, the kernel drops the victim's flocks, its pid is dead from
 * then on, and whatever it left on disk stays.
 *
 * What P names is an inode: none, a directory (with or without a pid file)
 * or a regular file. Every mkdir/creat makes a fresh inode number, so the
 * "same inode?" checks (fstat vs lstat) compare real identities.
 *
 * The property (assertions at every entry into the critical section):
 *   a runnerlock run is never inside together with any other run
 *   (runnerlock or legacy), unless EXCUSED (see below).
 * With -DLEGACY_ONLY the model has only form-2 hooks and the assertion is
 * plain mutual exclusion among them: spin must find the old steal race.
 *
 * EXCUSED: two races live in the legacy script itself and no protocol on
 * runnerlock's side can close them in an untimed world (a stealer may pause
 * for any time between its `cat pid`/`kill -0` and its `rm -rf`):
 *   misfire - a legacy stealer's `rm -rf "$P"` hit something other than the
 *             directory whose dead pid it read (its TOCTOU; with two stealers
 *             this is the old steal race, with runnerlock migrating first it
 *             deletes runnerlock's fresh lock file);
 *   window  - a stealer legitimately removed the stale directory that a
 *             runnerlock had judged and made a fresh one of its own; the
 *             runnerlock's exchange then swapped that fresh directory out,
 *             and during the swap window (before the exchange back) the
 *             runnerlock was killed hard, or P changed (the new holder's
 *             trap removed runnerlock's temp file).
 * -DSTRICT drops the excuses: spin then shows these races (expected).
 * -DPLAIN_RENAME migrates with rm pid / rmdir / rename(2) instead of the
 * exchange-and-verify: spin must find a violation that is not excused.
 * -DNO_RECHECK drops the "is P still the directory I locked?" re-check in
 * lock.judgeLegacy (shows why it is needed; needs -DNR=3 and a kill).
 *
 * Simplifications (see also the report in scripts/check-model.sh):
 *   - "aged" (older than --legacy-max-age) is modelled as "the directory's
 *     creator is dead": runs are assumed to be shorter than
 *     --legacy-max-age. A dead creator's young directory (really busy) is
 *     treated as stale, which only adds behaviours (skipping is always safe).
 *   - pid reuse is not modelled: a dead pid stays dead (the start-time check
 *     of lock.judgeLegacy is assumed right); pid namespaces, EPERM and
 *     garbage pid files are not modelled; directories hold only `pid`.
 *   - flocks are non-blocking (-n); a busy answer ends the run.
 *   - each process makes one run; a runnerlock retries from the top at most
 *     MAXROUND times, then gives up busy.
 *   - one step = one system call (or one shell command); writing the pid
 *     file is one step (no torn/empty pid file in between).
 */

#ifndef NR
#define NR 2            /* runnerlock processes */
#endif
#ifndef NL2
#define NL2 2           /* legacy hooks, form 2 (pid file, kill -0 steal) */
#endif
#ifndef NL1
#define NL1 1           /* legacy hooks, form 1 (bare mkdir) */
#endif
#ifdef LEGACY_ONLY
#undef NR
#undef NL1
#define NR 0
#define NL1 0
#define STRICT
#endif
#ifndef MAXKILL
#define MAXKILL 1       /* hard kills in one execution */
#endif
#ifndef MAXROUND
#define MAXROUND 2      /* attempts of one runnerlock before giving up busy */
#endif
#ifndef INIT
#define INIT 9          /* 0 empty, 1 stale dir with dead pid, 2 stale dir
                           without pid, 3 lock file, 9 any of them */
#endif

#define NPROC (NR + NL2 + NL1)
#define GHOST (NPROC + 1)         /* a pid that is dead from the start */
#define MAXID 20                  /* inode numbers 1..MAXID-1; 0 = none */

#define NONE 0
#define DIR  1
#define FILE 2

byte P;                 /* inode that the path P names, NONE if absent */
byte kind[MAXID];       /* DIR or FILE */
byte pidf[MAXID];       /* DIR: pid written in its `pid` file, 0 = no file */
byte wit[MAXID];        /* DIR: the processes alive when it last changed */
byte lk[MAXID];         /* flock(LOCK_EX) holder of the inode, 0 = none */
byte nid = 1;           /* next fresh inode number */
byte alivem;            /* bit p: process p has started and not ended;
                           pid 0 and GHOST are never alive */
byte inR, inL;          /* runnerlock / legacy runs inside */
byte nkill;             /* hard kills so far */
int  stolen;            /* bit i: dir i was removed by a stealer that judged it */
bool misfire, window;   /* the excuses, see above */

#define ISSTOLEN(d)  ((stolen >> (d)) & 1)
#define ALIVE(p)     ((alivem >> (p)) & 1)
#define START        alivem = alivem | (1 << me)
#define END          alivem = alivem & ~(1 << me)
/* mtime of directory d changes now */
#define TOUCH(d)     wit[d] = alivem
/* lock.judgeLegacy's "older than --legacy-max-age", under the assumption
   that every process lives shorter than --legacy-max-age: possible only
   when every process that was alive at the directory's last change has
   ended since (the model then takes it as aged: that only adds behaviours) */
#define AGED(d)      ((wit[d] & alivem) == 0)
#ifdef STRICT
#define EXCUSED false
#else
#define EXCUSED (misfire || window)
#endif

#define NEWINODE(v, k) v = nid; nid++; assert(nid <= MAXID); kind[v] = k

/* Entering the critical section: the property. */
#define ENTER_R  assert(EXCUSED || (inR == 0 && inL == 0)); inR++; ins = true
#ifdef LEGACY_ONLY
#define ENTER_L  assert(EXCUSED || (inR == 0 && inL == 0)); inL++; ins = true
#else
#define ENTER_L  assert(EXCUSED || inR == 0); inL++; ins = true
#endif

/* A hard kill is possible before every step: an option of each `if`. */
#define KILL :: atomic { nkill < MAXKILL -> nkill++; CLEANUP; goto dead }

/* ------------------------------------------------------------------ */
/* runnerlock: lock.Acquire / lock.tryFlock (lock/lock.go,            */
/* lock/lock_linux.go), lock.judgeLegacy (lock/legacy.go),            */
/* lock.migrateLegacy (lock/legacy_linux.go).                         */
/* ------------------------------------------------------------------ */

/* SIGKILL of a runnerlock: the kernel drops its flocks; the temp file stays. */
#define CLEANUP \
	if :: lk[fd] == me -> lk[fd] = 0 :: else fi; \
	if :: lk[dfd] == me -> lk[dfd] = 0 :: else fi; \
	if :: lk[t] == me -> lk[t] = 0 :: else fi; \
	if :: inwin && ISSTOLEN(dfd) -> window = true :: else fi; \
	if :: ins -> inR-- :: else fi; \
	END

proctype Runner(byte me)
{
	byte fd, dfd, t, tn, x, round;  /* tn: inode at my temp name T */
	bool ins, inwin;

	START;          /* the process starts: from now on it is alive */
top:
	if
	:: round == MAXROUND -> goto busy
	:: else -> round++
	fi;
	/* lock.Acquire: open(P, O_RDWR|O_CREAT|O_NOFOLLOW|O_CLOEXEC, 0600);
	   on EISDIR it reopens P with O_DIRECTORY (one step here: if P changed
	   in between, the Go code starts over, as this model's retry does). */
	if
	KILL
	:: atomic { P == NONE -> NEWINODE(fd, FILE); P = fd }
	:: atomic { P != NONE && kind[P] == FILE -> fd = P }
	:: atomic { P != NONE && kind[P] == DIR -> dfd = P; goto legacy }
	fi;
	/* lock.tryFlock: flock(fd, LOCK_EX|LOCK_NB) */
	if
	KILL
	:: atomic { lk[fd] == 0 -> lk[fd] = me }
	:: atomic { lk[fd] != 0 -> fd = 0; goto busy }
	fi;
	/* lock.tryFlock: fstat(fd) vs lstat(P): still the same inode? */
	if
	KILL
	:: atomic { P == fd -> ENTER_R; goto inside }
	:: atomic { P != fd -> lk[fd] = 0; fd = 0; goto top }
	fi;

legacy:
	/* lock.judgeLegacy: flock(dirfd, LOCK_EX|LOCK_NB) - serializes
	   runnerlock processes only; legacy hooks ignore it */
	if
	KILL
	:: atomic { lk[dfd] == 0 -> lk[dfd] = me }
	:: atomic { lk[dfd] != 0 -> dfd = 0; goto busy }
	fi;
	/* lock.judgeLegacy: read `pid` through dirfd, kill(pid, 0), fstat(dirfd)
	   for the age (one step) */
	if
	KILL
	:: atomic { ((pidf[dfd] != 0 && !ALIVE(pidf[dfd]))     /* holder-dead */
	          || (pidf[dfd] == 0 && AGED(dfd)))            /* no-pid-aged */
	            -> skip }
	:: atomic { ((pidf[dfd] != 0 && ALIVE(pidf[dfd]))      /* legacy run */
	          || (pidf[dfd] == 0 && !AGED(dfd)))           /* young dir  */
	            -> lk[dfd] = 0; dfd = 0; goto busy }
	fi;
#ifndef NO_RECHECK
	/* lock.judgeLegacy, after judging: lstat(P) vs fstat(dirfd) - is P
	   still the very directory I locked and judged? (else it was migrated
	   by another runnerlock, or removed, meanwhile: start over) */
	if
	KILL
	:: atomic { P == dfd -> skip }
	:: atomic { P != dfd -> lk[dfd] = 0; dfd = 0; goto top }
	fi;
#endif
	/* lock.migrateLegacy: create the temp file T beside P
	   (O_CREAT|O_EXCL|O_NOFOLLOW, 0600) and flock it; nobody else knows T */
	if
	KILL
	:: atomic { NEWINODE(t, FILE); tn = t; lk[t] = me }
	fi;
#ifndef PLAIN_RENAME
	/* lock.migrateLegacy: renameat2(T, P, RENAME_EXCHANGE), then the
	   verify: fstat(dirfd) vs lstat(T) - is what I swapped out the very
	   directory I judged? (T is private, so this is one step) */
	if
	KILL
	:: atomic { P == NONE ->                 /* ENOENT: start over */
	            tn = 0; lk[t] = 0; t = 0; lk[dfd] = 0; dfd = 0; goto top }
	:: atomic { P != NONE && P == dfd -> x = P; P = t; tn = x }
	:: atomic { P != NONE && P != dfd -> x = P; P = t; tn = x; inwin = true;
	            /* only a stealer's removal of the judged dir gets here */
	            assert(ISSTOLEN(dfd) || misfire);
	            goto swapback }
	fi;
	/* lock.migrateLegacy: unlinkat(T/pid), rmdir(T), close dirfd: P is now
	   my locked lock file */
	if
	KILL
	:: atomic { pidf[tn] = 0; tn = 0; lk[dfd] = 0; dfd = 0; fd = t; t = 0;
	            ENTER_R; goto inside }
	fi;
swapback:
	/* lock.migrateLegacy: not the judged dir (a legacy hook replaced it):
	   renameat2(T, P, RENAME_EXCHANGE) back */
	if
	KILL
	:: atomic { P != NONE ->
	            if :: P != t && ISSTOLEN(dfd) -> window = true :: else fi;
	            x = P; P = tn; tn = x; inwin = false }
	:: atomic { P == NONE ->                 /* ENOENT: P vanished */
	            if :: ISSTOLEN(dfd) -> window = true :: else fi;
	            inwin = false }
	fi;
	/* lock.migrateLegacy: unlink T if it still is my temp file, close it
	   and dirfd, decide again */
	if
	KILL
	:: atomic { if :: tn == t -> tn = 0 :: else fi;
	            lk[t] = 0; t = 0; lk[dfd] = 0; dfd = 0; goto top }
	fi;
#else
	/* negative control: migrate by path, without exchange and verify */
	/* unlink("P/pid") */
	if
	KILL
	:: atomic { if :: P != NONE && kind[P] == DIR && pidf[P] != 0 ->
	                  pidf[P] = 0; TOUCH(P)
	               :: else fi }
	fi;
	/* rmdir("P") */
	if
	KILL
	:: atomic { if :: P != NONE && kind[P] == DIR && pidf[P] == 0 -> P = NONE
	               :: else fi }
	fi;
	/* rename(T, P): replaces a file or nothing, fails on a directory */
	if
	KILL
	:: atomic { P == NONE || kind[P] == FILE ->
	            P = t; tn = 0; lk[dfd] = 0; dfd = 0; fd = t; t = 0;
	            ENTER_R; goto inside }
	:: atomic { P != NONE && kind[P] == DIR ->
	            tn = 0; lk[t] = 0; t = 0; lk[dfd] = 0; dfd = 0; goto top }
	fi;
#endif

inside:
	/* the run: CMD holds the locked descriptor */
	if
	KILL
	:: atomic { inR--; ins = false; lk[fd] = 0; fd = 0; goto done }  /* close */
	fi;
busy:
	skip;   /* skip reason="runner-busy" */
done:
	END;
dead:
	skip
}
#undef CLEANUP

/* ------------------------------------------------------------------ */
/* legacy hook, form 2: scripts/legacy-hook.sh                        */
/*   mkdir "$P" || { steal with kill -0 once, else skip }             */
/*   trap 'rm -rf "$P"' EXIT; echo $$ > "$P/pid"; run                  */
/* ------------------------------------------------------------------ */

/* SIGKILL of a legacy hook: no trap; its directory stays as it is. */
#define CLEANUP \
	if :: ins -> inL-- :: else fi; \
	END

/* rm -rf "$P", as GNU rm does it: first the contents (or a regular file
   itself), then rmdir by path; `jd` is the directory the stealer judged
   (0 for the trap); removing anything else is a stealer's misfire */
#define RMRF_1 \
	if \
	:: P == NONE -> skip \
	:: P != NONE && kind[P] == FILE -> \
		if :: jd != 0 -> misfire = true :: else fi; P = NONE \
	:: P != NONE && kind[P] == DIR -> \
		if :: jd != 0 && P != jd -> misfire = true :: else fi; \
		if :: pidf[P] != 0 -> pidf[P] = 0; TOUCH(P) :: else fi \
	fi
#define RMRF_2 \
	if \
	:: P != NONE && kind[P] == DIR && pidf[P] == 0 -> \
		if :: jd != 0 && P != jd -> misfire = true \
		   :: jd != 0 && P == jd -> stolen = stolen | (1 << P) \
		   :: else fi; \
		P = NONE \
	:: else \
	fi

proctype Legacy2(byte me)
{
	byte own, jd, pv;
	bool ins, retried;

	START;
mk:
	/* legacy-hook.sh: mkdir "$P" */
	if
	KILL
	:: atomic { P == NONE -> NEWINODE(own, DIR); TOUCH(own); P = own;
	            goto pidw }
	:: atomic { P != NONE && retried -> goto done }          /* skip */
	:: atomic { P != NONE && !retried -> retried = true }
	fi;
	/* legacy-hook.sh: pid=$(cat "$P/pid") - no pid file (or P is a
	   regular file: ENOTDIR) means skip */
	if
	KILL
	:: atomic { P != NONE && kind[P] == DIR && pidf[P] != 0 ->
	            jd = P; pv = pidf[P] }
	:: atomic { !(P != NONE && kind[P] == DIR && pidf[P] != 0) -> goto done }
	fi;
	/* legacy-hook.sh: kill -0 "$pid" */
	if
	KILL
	:: atomic { ALIVE(pv) -> goto done }
	:: atomic { !ALIVE(pv) -> skip }
	fi;
	/* legacy-hook.sh: rm -rf "$P" (contents) */
	if
	KILL
	:: atomic { RMRF_1 }
	fi;
	/* rm -rf: rmdir "$P" */
	if
	KILL
	:: atomic { RMRF_2; jd = 0; goto mk }                   /* mkdir once more */
	fi;

pidw:
	/* legacy-hook.sh: echo $$ > "$P/pid" (fails if P is no directory) */
	if
	KILL
	:: atomic { if :: P != NONE && kind[P] == DIR -> pidf[P] = me; TOUCH(P)
	               :: else fi;
	            ENTER_L }
	fi;
	/* the run */
	if
	KILL
	:: atomic { inL--; ins = false }
	fi;
	/* trap: rm -rf "$P" (contents) */
	if
	KILL
	:: atomic { RMRF_1 }
	fi;
	/* trap: rm -rf: rmdir "$P" */
	if
	KILL
	:: atomic { RMRF_2 }
	fi;
done:
	END;
dead:
	skip
}

/* ------------------------------------------------------------------ */
/* legacy hook, form 1: mkdir "$P" || skip; trap 'rmdir "$P"' EXIT     */
/* ------------------------------------------------------------------ */
proctype Legacy1(byte me)
{
	byte own;
	bool ins;

	START;
	/* mkdir "$P" */
	if
	KILL
	:: atomic { P == NONE -> NEWINODE(own, DIR); TOUCH(own); P = own;
	            ENTER_L }
	:: atomic { P != NONE -> goto done }                     /* skip */
	fi;
	/* the run */
	if
	KILL
	:: atomic { inL--; ins = false }
	fi;
	/* trap: rmdir "$P" (fails on a file or a directory with a pid) */
	if
	KILL
	:: atomic { if :: P != NONE && kind[P] == DIR && pidf[P] == 0 -> P = NONE
	               :: else fi }
	fi;
done:
	END;
dead:
	skip
}
#undef CLEANUP

init {
	byte i, d;
	atomic {
		/* the path at the start of the rollout */
		if
		:: INIT == 0 || INIT == 9 -> skip                       /* empty */
		:: INIT == 1 || INIT == 9 ->  /* stale dir, holder killed: dead pid */
			NEWINODE(d, DIR); pidf[d] = GHOST; P = d
		:: INIT == 2 || INIT == 9 ->  /* stale dir without pid, aged */
			NEWINODE(d, DIR); P = d
		:: INIT == 3 || INIT == 9 ->  /* already migrated: a lock file */
			NEWINODE(d, FILE); P = d
		fi;
		i = 1;
		do
		:: i <= NR -> run Runner(i); i++
		:: i > NR && i <= NR + NL2 -> run Legacy2(i); i++
		:: i > NR + NL2 && i <= NPROC -> run Legacy1(i); i++
		:: else -> break
		od
	}
}
