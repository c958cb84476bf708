// SPDX-License-Identifier: GPL-2.0
/*
 * Another tracer: PTRACE_SEIZEs the pid given (no stop), says "ready",
 * and holds it until stdin closes. The ptrace engine must then skip that
 * process ("already traced") and leave it running.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char c;

	if (argc < 2)
		return 2;
	if (ptrace(PTRACE_SEIZE, atoi(argv[1]), NULL, NULL)) {
		perror("PTRACE_SEIZE");
		return 1;
	}
	printf("ready %d\n", getpid());
	fflush(stdout);
	while (read(0, &c, 1) > 0)
		;
	return 0;
}
