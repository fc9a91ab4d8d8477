// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * syscost: what one traced socket syscall costs. One thread sends SIZE bytes
 * over a loopback TCP connection and reads them back on the other end, N
 * times, and prints "ns_per_call X port P" (a write and a read are two
 * calls). Run it under each observer to see the per-syscall cost; with
 * PORT_FILE set it listens first, writes its port there and waits for a
 * byte on stdin before starting, so an observer can filter on the port.
 * With IOVECS > 1 each write is a writev() of IOVECS equal parts, as
 * gRPC's C core sends (its first sendmsg has 27).
 *
 *   syscost N SIZE [IOVECS]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 200000;
	int size = argc > 2 ? atoi(argv[2]) : 256;
	int iovcnt = argc > 3 ? atoi(argv[3]) : 1;
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t alen = sizeof(addr);
	int one = 1, lfd, cfd, sfd;
	char *buf = calloc(1, size);
	struct iovec iov[1024];
	const char *port_file = getenv("PORT_FILE");
	double t0;

	if (size < 1 || iovcnt < 1 || iovcnt > 1024 || iovcnt > size) {
		fprintf(stderr, "syscost: expected N SIZE [IOVECS], 1 <= IOVECS <= min(SIZE, 1024)\n");
		return 2;
	}
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) || listen(lfd, 1) ||
	    getsockname(lfd, (struct sockaddr *)&addr, &alen)) {
		perror("syscost: listen");
		return 1;
	}
	if (port_file) {
		FILE *f = fopen(port_file, "w");
		char c;

		if (!f) {
			perror("syscost: PORT_FILE");
			return 1;
		}
		fprintf(f, "%d\n", ntohs(addr.sin_port));
		fclose(f);
		if (read(0, &c, 1) < 0)
			return 1;
	}
	cfd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(cfd, (struct sockaddr *)&addr, sizeof(addr))) {
		perror("syscost: connect");
		return 1;
	}
	sfd = accept(lfd, NULL, NULL);
	setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	memset(buf, 'a', size);
	memcpy(buf, "GET /syscost HTTP/1.1\r\n", 23 < size ? 23 : size);
	for (int i = 0; i < iovcnt; i++) {
		iov[i].iov_base = buf + (long)size * i / iovcnt;
		iov[i].iov_len = (long)size * (i + 1) / iovcnt - (long)size * i / iovcnt;
	}
	t0 = now();
	for (long i = 0; i < n; i++) {
		int got = 0;

		if ((iovcnt > 1 ? writev(cfd, iov, iovcnt) : write(cfd, buf, size)) != size) {
			perror("syscost: write");
			return 1;
		}
		while (got < size) {
			ssize_t r = read(sfd, buf, size - got);

			if (r <= 0) {
				perror("syscost: read");
				return 1;
			}
			got += r;
		}
	}
	printf("ns_per_call %.1f port %d\n", (now() - t0) / (2.0 * n), ntohs(addr.sin_port));
	return 0;
}
