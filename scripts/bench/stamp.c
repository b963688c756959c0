/*
 * stamp: the timing helper of scripts/bench.sh, in C so that its own start
 * costs a fraction of what it measures. Built static by bench.sh.
 *
 *   stamp now            print CLOCK_REALTIME in ns: a waiter's command,
 *                        whose first instruction is what is timed
 *   stamp hold FILE      take flock(LOCK_EX) on FILE, print "ready", wait
 *                        for one byte on stdin, then read the clock, drop
 *                        the lock (close) and print the time of release
 *   stamp kill PID...    read the clock, kill -9 each PID, print the time
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

static long long now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long long t = now();
	if (argc >= 2 && strcmp(argv[1], "now") == 0) {
		printf("%lld\n", t);
		return 0;
	}
	if (argc == 3 && strcmp(argv[1], "hold") == 0) {
		char c;
		int fd = open(argv[2], O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (fd < 0 || flock(fd, LOCK_EX) != 0) {
			perror("stamp hold");
			return 2;
		}
		printf("ready\n");
		fflush(stdout);
		if (read(0, &c, 1) < 0)
			return 2;
		t = now();
		close(fd);
		printf("%lld\n", t);
		return 0;
	}
	if (argc >= 3 && strcmp(argv[1], "kill") == 0) {
		t = now();
		for (int i = 2; i < argc; i++)
			kill(atoi(argv[i]), SIGKILL);
		printf("%lld\n", t);
		return 0;
	}
	fprintf(stderr, "usage: stamp now | hold FILE | kill PID...\n");
	return 2;
}
