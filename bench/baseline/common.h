/*
 * Shared parts of the C baselines (relay.c, tun_loop.c): argument parsing, the
 * monotonic clock, UDP sockets, the batch slots and the one-line JSON result.
 *
 * Header-only with static functions, so that each baseline stays one translation
 * unit and build.py compiles it with one gcc command.  Include it first: the GNU
 * extensions (recvmmsg, sendmmsg) need _GNU_SOURCE before any system header.
 *
 * Every loop of the baselines is bounded twice: by a packet count and by a
 * deadline on the monotonic clock, so a benchmark never hangs on a lost datagram.
 */
#ifndef L2TPFAST_BASELINE_COMMON_H
#define L2TPFAST_BASELINE_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* One receive slot: a 1500-octet MTU datagram fits; a longer one is cut and counted. */
#define SLOT_SIZE 2048
/* UIO_MAXIOV: the kernel refuses a recvmmsg/sendmmsg vlen above this. */
#define MAX_BATCH 1024
/* An EINTR storm must not spin forever either. */
#define MAX_RETRIES 1000
#define DEFAULT_SECONDS 10.0
#define DEFAULT_IDLE_MS 300L
/* Asked for a socket bound here (not handed over); SO_RCVBUFFORCE needs root. */
#define BOUND_RCVBUF (32 * 1024 * 1024)

static const char *prog_name = "baseline";

static void die(const char *what)
{
	fprintf(stderr, "%s: %s: %s\n", prog_name, what, strerror(errno));
	exit(1);
}

static void fail(const char *message)
{
	fprintf(stderr, "%s: %s\n", prog_name, message);
	exit(2);
}

static double now_s(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		die("clock_gettime");
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long parse_long(const char *text, long lo, long hi, const char *name)
{
	char *end = NULL;
	long value;

	errno = 0;
	value = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || value < lo || value > hi) {
		fprintf(stderr, "%s: %s must be an integer in [%ld, %ld], not '%s'\n", prog_name, name, lo,
			hi, text);
		exit(2);
	}
	return value;
}

static double parse_seconds(const char *text)
{
	char *end = NULL;
	double value = strtod(text, &end);

	if (end == text || *end != '\0' || !(value > 0.0 && value <= 3600.0))
		fail("SECONDS must be a number in (0, 3600]");
	return value;
}

/* A numeric IPv4 or IPv6 address and a port; no name lookup, so no DNS wait. */
static socklen_t parse_addr(const char *host, const char *port, struct sockaddr_storage *out)
{
	struct addrinfo hints, *res = NULL;
	socklen_t len;
	int rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc != 0 || res == NULL) {
		fprintf(stderr, "%s: bad address %s port %s: %s\n", prog_name, host, port,
			gai_strerror(rc));
		exit(2);
	}
	len = res->ai_addrlen;
	memcpy(out, res->ai_addr, len);
	freeaddrinfo(res);
	return len;
}

/* The socket to send from: unbound and unconnected, so an ICMP error from a
 * closed port never turns into ECONNREFUSED on a later send. */
static int open_sender(const struct sockaddr_storage *dst)
{
	int fd = socket(dst->ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket");
	return fd;
}

/*
 * The receiving socket: "fd:N" takes over an inherited bound UDP socket, which
 * is how a benchmark hands over a receive queue it filled beforehand; a plain
 * port number binds a new socket on 0.0.0.0 (0 for an ephemeral port).
 */
static int open_receiver(const char *spec, int *port_out)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	int fd, size = BOUND_RCVBUF;

	if (strncmp(spec, "fd:", 3) == 0) {
		fd = (int)parse_long(spec + 3, 0, 1 << 20, "fd:N");
	} else {
		struct sockaddr_in sin;

		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons((unsigned short)parse_long(spec, 0, 65535, "port"));
		sin.sin_addr.s_addr = htonl(INADDR_ANY);
		fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fd < 0)
			die("socket");
		/* A live sender bursts faster than one batch; without root the default stays. */
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
		if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
			die("bind");
	}
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		die("getsockname of the receiving socket");
	if (ss.ss_family == AF_INET)
		*port_out = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	else if (ss.ss_family == AF_INET6)
		*port_out = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	else
		fail("the receiving socket is not an IPv4 or IPv6 socket");
	return fd;
}

/* Wait until fd is readable or the clock passes until; 1 when readable, 0 on timeout. */
static int wait_readable(int fd, double until)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN, .revents = 0 };
	double left = until - now_s();
	int rc;

	if (left <= 0.0)
		return 0;
	/* At most 100 ms at a time, so the caller re-checks its deadline and idle limit. */
	rc = poll(&pfd, 1, left > 0.1 ? 100 : (int)(left * 1000.0) + 1);
	if (rc < 0 && errno != EINTR)
		die("poll");
	return rc > 0;
}

/*
 * The batch: BATCH slots of slot_size octets, each with its own iovec and
 * source-address storage.  recv_msgs are the recvmmsg slots; send_msgs point at
 * the same buffers (so forwarding copies nothing) with the received lengths and
 * the one destination.  All of it lives until the program exits.
 */
struct batch {
	unsigned int size;
	size_t slot_size;
	unsigned char *buf;
	struct sockaddr_storage *names;
	struct iovec *recv_iov, *send_iov;
	struct mmsghdr *recv_msgs, *send_msgs;
};

static void batch_init(struct batch *b, unsigned int size, size_t slot_size,
		       const struct sockaddr_storage *dst, socklen_t dst_len)
{
	unsigned int i;

	b->size = size;
	b->slot_size = slot_size;
	b->buf = calloc(size, slot_size);
	b->names = calloc(size, sizeof(*b->names));
	b->recv_iov = calloc(size, sizeof(*b->recv_iov));
	b->send_iov = calloc(size, sizeof(*b->send_iov));
	b->recv_msgs = calloc(size, sizeof(*b->recv_msgs));
	b->send_msgs = calloc(size, sizeof(*b->send_msgs));
	if (!b->buf || !b->names || !b->recv_iov || !b->send_iov || !b->recv_msgs || !b->send_msgs)
		die("calloc");
	for (i = 0; i < size; i++) {
		b->recv_iov[i].iov_base = b->buf + (size_t)i * slot_size;
		b->recv_iov[i].iov_len = slot_size;
		b->recv_msgs[i].msg_hdr.msg_iov = &b->recv_iov[i];
		b->recv_msgs[i].msg_hdr.msg_iovlen = 1;
		b->recv_msgs[i].msg_hdr.msg_name = &b->names[i];
		b->send_iov[i].iov_base = b->recv_iov[i].iov_base;
		b->send_msgs[i].msg_hdr.msg_iov = &b->send_iov[i];
		b->send_msgs[i].msg_hdr.msg_iovlen = 1;
		/* const dropped: the kernel only reads msg_name on send. */
		b->send_msgs[i].msg_hdr.msg_name = (void *)dst;
		b->send_msgs[i].msg_hdr.msg_namelen = dst_len;
	}
}

/*
 * recvmmsg without blocking into the first n slots.  The source address is
 * received, as a data plane must check it; msg_namelen is an in/out field, so it
 * is reset for every call.  Returns the slots filled, 0 when nothing is queued.
 */
static unsigned int batch_recv(struct batch *b, int fd, unsigned int n)
{
	unsigned int i;
	int got, tries;

	for (i = 0; i < n; i++)
		b->recv_msgs[i].msg_hdr.msg_namelen = sizeof(b->names[i]);
	for (tries = 0; tries < MAX_RETRIES; tries++) {
		got = recvmmsg(fd, b->recv_msgs, n, MSG_DONTWAIT, NULL);
		if (got >= 0)
			return (unsigned int)got;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return 0;
		if (errno != EINTR)
			die("recvmmsg");
	}
	fail("recvmmsg: interrupted too often");
	return 0;
}

/* sendmmsg the first n send slots; it may send fewer than asked, so send the rest. */
static void batch_send(struct batch *b, int fd, unsigned int n)
{
	unsigned int off = 0;
	int sent, tries;

	for (tries = 0; off < n && tries < MAX_RETRIES; tries++) {
		sent = sendmmsg(fd, b->send_msgs + off, n - off, 0);
		if (sent < 0) {
			if (errno == EINTR)
				continue;
			die("sendmmsg");
		}
		off += (unsigned int)sent;
	}
	if (off < n)
		fail("sendmmsg: made no progress");
}

/*
 * The measurement: from the first datagram taken to the last one handled, so the
 * wait for the sender to start and the idle time at the end are not counted.
 */
struct result {
	const char *mode;
	unsigned long packets, bytes, batches, truncated, errors;
	double first, last;
	const char *stop; /* "count", "idle" or "deadline" */
	int first_errno;
};

/* Bounds of the main loops: total count, deadline, and idle time once started. */
struct limits {
	unsigned long packets;
	double deadline;
	double idle;
};

static void limits_init(struct limits *lim, unsigned long packets, int argc, char **argv, int first)
{
	double seconds = argc > first ? parse_seconds(argv[first]) : DEFAULT_SECONDS;
	long idle_ms = argc > first + 1 ? parse_long(argv[first + 1], 1, 3600000, "IDLE_MS")
					: DEFAULT_IDLE_MS;

	lim->packets = packets;
	lim->deadline = now_s() + seconds;
	lim->idle = (double)idle_ms / 1000.0;
}

/* The reason to stop now, or NULL to go on; also the time until which to wait. */
static const char *limits_check(const struct limits *lim, const struct result *r, double t,
				double *wait_until)
{
	if (r->packets >= lim->packets)
		return "count";
	if (t >= lim->deadline)
		return "deadline";
	*wait_until = lim->deadline;
	if (r->packets > 0) {
		if (t - r->last >= lim->idle)
			return "idle";
		if (r->last + lim->idle < *wait_until)
			*wait_until = r->last + lim->idle;
	}
	return NULL;
}

static inline void note_error(struct result *r, int err)
{
	if (r->errors++ == 0)
		r->first_errno = err;
}

static int print_result(const struct result *r)
{
	double seconds = r->packets > 0 ? r->last - r->first : 0.0;

	printf("{\"mode\": \"%s\", \"packets\": %lu, \"bytes\": %lu, \"seconds\": %.9f, "
	       "\"pps\": %.1f, \"batches\": %lu, \"avg_batch\": %.2f, \"truncated\": %lu, "
	       "\"errors\": %lu, \"first_errno\": %d, \"stop\": \"%s\"}\n",
	       r->mode, r->packets, r->bytes, seconds,
	       seconds > 0.0 ? (double)r->packets / seconds : 0.0, r->batches,
	       r->batches ? (double)r->packets / (double)r->batches : 0.0, r->truncated, r->errors,
	       r->first_errno, r->stop);
	fflush(stdout);
	/* 0 only when the whole count went through, so a test can rely on the status. */
	return strcmp(r->stop, "count") == 0 ? 0 : 3;
}

/* Tells a waiting harness that the sockets (and TUN) are set up; stderr is unbuffered. */
static void print_ready(int port)
{
	fprintf(stderr, "{\"ready\": true, \"port\": %d}\n", port);
}

#endif /* L2TPFAST_BASELINE_COMMON_H */
