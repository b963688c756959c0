/*
 * inotify_close FILE: how long close(2) of an inotify instance takes, with
 * one watch on FILE and without. Closing an instance that had a watch
 * waits for an SRCU grace period (fsnotify_destroy_group), milliseconds on
 * a 2-core VM: any process that sets up a watch pays it when it closes the
 * instance, or when it exits. Used by scripts/bench/startup.sh.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/inotify.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 21

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median_close(const char *path)
{
	double v[ROUNDS];
	for (int i = 0; i < ROUNDS; i++) {
		int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
		if (fd < 0) {
			perror("inotify_init1");
			exit(1);
		}
		if (path && inotify_add_watch(fd, path, IN_ATTRIB | IN_MOVE_SELF) < 0) {
			perror("inotify_add_watch");
			exit(1);
		}
		double t0 = now_ms();
		close(fd);
		v[i] = now_ms() - t0;
	}
	qsort(v, ROUNDS, sizeof v[0], cmp);
	return v[ROUNDS / 2];
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: inotify_close FILE\n");
		return 2;
	}
	printf("median %.2f ms with a watch, %.3f ms without\n",
	       median_close(argv[1]), median_close(NULL));
	return 0;
}
