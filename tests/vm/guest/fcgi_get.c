// SPDX-License-Identifier: GPL-2.0
/*
 * fcgi_get: a FastCGI client for the php-fpm test (t_51_phpfpm.sh), which
 * has no web server in front of php-fpm: sends REQUESTS GET requests for
 * one script over TCP, CONCURRENCY at a time (one process each), as a web
 * server's mod_proxy_fcgi would. (C, not Deno: under TCG a Deno start
 * costs tens of seconds.)
 *
 *   fcgi_get HOST PORT SCRIPT_FILENAME REQUESTS CONCURRENCY
 *   fcgi_get /PATH/OF/SOCKET - SCRIPT_FILENAME REQUESTS CONCURRENCY
 *
 * HOST is an IPv4 address, or the absolute path of php-fpm's Unix socket
 * (the containers of containers_lib.sh have no network), PORT then "-".
 *
 * stdout: the body of the responses, once. stderr: `requests=N failed=M
 * distinct_bodies=B`. A request fails when the connection fails, php-fpm
 * ends it with a protocol status other than 0 (request complete), writes
 * to FCGI_STDERR, or answers a Status other than 200. Exit 0 when none
 * failed and every body was the same, else 1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define FCGI_BEGIN_REQUEST 1
#define FCGI_END_REQUEST 3
#define FCGI_PARAMS 4
#define FCGI_STDIN 5
#define FCGI_STDOUT 6
#define FCGI_STDERR 7
#define MAX_RESPONSE (4 << 20)

struct buf {
	unsigned char *p;
	size_t n;
};

static void put(struct buf *b, const void *data, size_t n)
{
	b->p = realloc(b->p, b->n + n);
	if (!b->p) {
		perror("realloc");
		exit(2);
	}
	memcpy(b->p + b->n, data, n);
	b->n += n;
}

static void record(struct buf *b, int type, const void *body, size_t n)
{
	unsigned char h[8] = { 1, type, 0, 1, n >> 8, n & 0xff, 0, 0 };

	put(b, h, 8);
	put(b, body, n);
}

static void pair(struct buf *b, const char *name, const char *value)
{
	size_t n = strlen(name), v = strlen(value);
	unsigned char l[2] = { n, v }; /* all names and values here are < 128 */

	put(b, l, 2);
	put(b, name, n);
	put(b, value, v);
}

/* One request; the body goes to *body. Returns 0 on success. */
static int request(const struct sockaddr_storage *addr, socklen_t addrlen, const char *script,
		   struct buf *body)
{
	static unsigned char resp[MAX_RESPONSE];
	const char *uri = strrchr(script, '/');
	char root[4096];
	struct buf req = { 0 }, params = { 0 };
	unsigned char begin[8] = { 0, 1 /* responder */ };
	size_t got = 0, o;
	int fd, status = 200, protocol = -1, err = 0;
	ssize_t n;

	snprintf(root, sizeof(root), "%.*s", (int)(uri - script), script);
	pair(&params, "GATEWAY_INTERFACE", "CGI/1.1");
	pair(&params, "REQUEST_METHOD", "GET");
	pair(&params, "SCRIPT_FILENAME", script);
	pair(&params, "SCRIPT_NAME", uri);
	pair(&params, "REQUEST_URI", uri);
	pair(&params, "DOCUMENT_URI", uri);
	pair(&params, "DOCUMENT_ROOT", root);
	pair(&params, "QUERY_STRING", "");
	pair(&params, "SERVER_PROTOCOL", "HTTP/1.1");
	pair(&params, "SERVER_NAME", "localhost");
	pair(&params, "SERVER_PORT", "80");
	pair(&params, "REMOTE_ADDR", "127.0.0.1");
	record(&req, FCGI_BEGIN_REQUEST, begin, 8);
	record(&req, FCGI_PARAMS, params.p, params.n);
	record(&req, FCGI_PARAMS, "", 0);
	record(&req, FCGI_STDIN, "", 0);
	free(params.p);

	fd = socket(addr->ss_family, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (const struct sockaddr *)addr, addrlen) ||
	    write(fd, req.p, req.n) != (ssize_t)req.n) {
		perror("fcgi_get: connect/write");
		free(req.p);
		if (fd >= 0)
			close(fd);
		return -1;
	}
	free(req.p);
	while (got < sizeof(resp) && (n = read(fd, resp + got, sizeof(resp) - got)) > 0)
		got += n;
	close(fd);

	body->n = 0;
	for (o = 0; o + 8 <= got;) {
		int type = resp[o + 1];
		size_t len = resp[o + 4] << 8 | resp[o + 5];

		if (o + 8 + len > got)
			break;
		if (type == FCGI_STDOUT)
			put(body, resp + o + 8, len);
		else if (type == FCGI_STDERR && len)
			err = 1;
		else if (type == FCGI_END_REQUEST && len >= 5)
			protocol = resp[o + 8 + 4];
		o += 8 + len + resp[o + 6];
	}
	/* Split the CGI headers off the body. */
	put(body, "", 1);
	char *text = (char *)body->p, *sep = strstr(text, "\r\n\r\n"), *st;

	if (!sep) {
		fprintf(stderr, "fcgi_get: no headers in the response\n");
		return -1;
	}
	*sep = 0;
	st = strcasestr(text, "Status: ");
	if (st && (st == text || st[-1] == '\n'))
		status = atoi(st + 8);
	memmove(body->p, sep + 4, body->n - 1 - (sep + 4 - text));
	body->n -= 1 + (sep + 4 - text);
	if (status != 200 || protocol != 0 || err) {
		fprintf(stderr, "fcgi_get: status %d, protocol status %d%s\n", status, protocol,
			err ? ", FCGI_STDERR output" : "");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_storage addr = { 0 };
	struct sockaddr_in *in4 = (struct sockaddr_in *)&addr;
	struct sockaddr_un *un = (struct sockaddr_un *)&addr;
	socklen_t addrlen;
	int requests, conc, i, failed = 0, distinct = 0;
	struct buf first = { 0 };
	int (*pipes)[2];
	pid_t *pids;

	if (argc != 6) {
usage:
		fprintf(stderr, "usage: fcgi_get HOST PORT SCRIPT_FILENAME REQUESTS CONCURRENCY\n"
				"       fcgi_get /SOCKET - SCRIPT_FILENAME REQUESTS CONCURRENCY\n");
		return 2;
	}
	if (argv[1][0] == '/') {
		if (strlen(argv[1]) >= sizeof(un->sun_path))
			goto usage;
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, argv[1]);
		addrlen = sizeof(*un);
	} else {
		in4->sin_family = AF_INET;
		if (inet_pton(AF_INET, argv[1], &in4->sin_addr) != 1)
			goto usage;
		in4->sin_port = htons(atoi(argv[2]));
		addrlen = sizeof(*in4);
	}
	requests = atoi(argv[4]);
	conc = atoi(argv[5]);
	if (requests < 1 || conc < 1 || conc > requests)
		return 2;
	pipes = calloc(conc, sizeof(*pipes));
	pids = calloc(conc, sizeof(*pids));
	/* Each worker sends its share and reports: failures, then its bodies. */
	for (i = 0; i < conc; i++) {
		if (pipe(pipes[i]))
			return 2;
		pids[i] = fork();
		if (pids[i] == 0) {
			struct buf body = { 0 }, mine = { 0 };
			int fails = 0, diff = 0, k;
			FILE *out = fdopen(pipes[i][1], "w");

			for (k = i; k < requests; k += conc) {
				if (request(&addr, addrlen, argv[3], &body)) {
					fails++;
				} else if (!mine.p) {
					put(&mine, body.p, body.n);
				} else if (mine.n != body.n || memcmp(mine.p, body.p, body.n)) {
					diff = 1;
				}
			}
			fprintf(out, "%d %d %zu\n", fails, diff, mine.n);
			fwrite(mine.p, 1, mine.n, out);
			fclose(out);
			_exit(0);
		}
		close(pipes[i][1]);
	}
	for (i = 0; i < conc; i++) {
		FILE *in = fdopen(pipes[i][0], "r");
		int fails = 0, diff = 0;
		size_t n = 0;
		struct buf b = { 0 };

		if (!in || fscanf(in, "%d %d %zu\n", &fails, &diff, &n) != 3) {
			failed++;
			continue;
		}
		b.p = malloc(n + 1);
		if (fread(b.p, 1, n, in) != n)
			failed++;
		b.n = n;
		fclose(in);
		waitpid(pids[i], NULL, 0);
		failed += fails;
		if (!first.p) {
			first = b;
			distinct = n || !fails ? 1 : 0;
		} else {
			if (n && (n != first.n || memcmp(b.p, first.p, n)))
				diff = 1;
			free(b.p);
		}
		distinct += diff;
	}
	fprintf(stderr, "requests=%d failed=%d distinct_bodies=%d\n", requests, failed, distinct);
	if (first.p)
		fwrite(first.p, 1, first.n, stdout);
	return failed == 0 && distinct == 1 ? 0 : 1;
}
