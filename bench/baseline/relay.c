/*
 * relay: the C baseline of the l2tpfast UDP data plane (bench/README.md).
 *
 * It does the system calls a batch data plane cannot avoid and nothing else: one
 * recvmmsg per batch into preallocated slots, one sendmmsg per batch from those
 * same slots.  Its packet rate is the ceiling the Cython data plane is compared to.
 *
 *   relay relay IN DST_HOST DST_PORT BATCH PACKETS [SECONDS [IDLE_MS]]
 *       receive in batches of BATCH from IN, send each batch to DST_HOST:DST_PORT
 *   relay recv IN BATCH PACKETS [SECONDS [IDLE_MS]]
 *       receive only: the cost of recvmmsg alone
 *   relay blast DST_HOST DST_PORT SIZE COUNT BATCH [TEMPLATE]
 *       send COUNT datagrams of SIZE octets with sendmmsg, as fast as it can: the
 *       prefill and load helper.  Each datagram starts with its 32-bit big-endian
 *       sequence number, then octet k is k mod 251 (a prime, so the pattern does
 *       not line up with the sequence numbers); with TEMPLATE each datagram is the
 *       first SIZE octets of that file instead, unstamped.
 *   relay mblast DSTS DST_PORT SIZE SECONDS BATCH SOURCES [PPS]
 *       the load generator of the PPP benchmark and `make demo`: DSTS and SOURCES
 *       are comma-separated IPv4 addresses (SOURCES "-": let the kernel choose).
 *       Flow i is a socket bound to SOURCES[i % n] sending to DSTS[i % m], one
 *       flow per address of the longer list; batches go round robin over the
 *       flows for SECONDS, at most PPS datagrams a second when given and not 0.
 *       Upstream through a LAC, the sources are the PPP sessions' addresses (the
 *       LAC routes by source); downstream from behind the LNS, the destinations
 *       are.  Datagrams are stamped like blast's; send errors (ENOBUFS from a
 *       full TUN queue) are counted, not fatal.
 *
 * IN is "fd:N" (an inherited bound UDP socket, typically with a receive queue the
 * caller filled beforehand) or a port to bind on 0.0.0.0.  Receiving stops after
 * PACKETS datagrams, SECONDS (default 10) after start, or IDLE_MS (default 300)
 * after the last datagram.  Each mode prints one JSON line on stdout:
 *   {"mode": ..., "packets": n, "bytes": b, "seconds": s, "pps": x, ...}
 * timed from the first datagram to the last.  Exit status 0 when the whole count
 * went through, 3 when it stopped early (the line is printed all the same), 1 on a
 * system error, 2 on bad arguments.
 */
#include "common.h"

#include <fcntl.h>
#include <arpa/inet.h>
#include <stdint.h>

static int usage(void)
{
	fprintf(stderr,
		"usage: relay relay IN DST_HOST DST_PORT BATCH PACKETS [SECONDS [IDLE_MS]]\n"
		"       relay recv IN BATCH PACKETS [SECONDS [IDLE_MS]]\n"
		"       relay blast DST_HOST DST_PORT SIZE COUNT BATCH [TEMPLATE]\n"
		"       relay mblast DSTS DST_PORT SIZE SECONDS BATCH SOURCES [PPS]\n"
		"IN is fd:N (an inherited bound UDP socket) or a port to bind on 0.0.0.0\n");
	return 2;
}

/* relay and recv: the same loop; out_fd < 0 means receive only. */
static int run_relay(int argc, char **argv, int forward)
{
	struct sockaddr_storage dst;
	socklen_t dst_len = 0;
	struct batch b;
	struct limits lim;
	struct result r = { .mode = forward ? "relay" : "recv", .stop = "count" };
	int in_fd, out_fd = -1, port = 0, first_opt = forward ? 7 : 5;
	unsigned int size, i, want, got;
	double t, wait_until = 0.0;
	const char *stop = "count";

	if (argc < first_opt || argc > first_opt + 2)
		return usage();
	memset(&dst, 0, sizeof(dst));
	if (forward)
		dst_len = parse_addr(argv[3], argv[4], &dst);
	size = (unsigned int)parse_long(argv[forward ? 5 : 3], 1, MAX_BATCH, "BATCH");
	in_fd = open_receiver(argv[2], &port);
	if (forward)
		out_fd = open_sender(&dst);
	batch_init(&b, size, SLOT_SIZE, &dst, dst_len);
	limits_init(&lim, (unsigned long)parse_long(argv[forward ? 6 : 4], 1, 1L << 40, "PACKETS"), argc,
		    argv, first_opt);
	print_ready(port);

	for (;;) {
		t = now_s();
		stop = limits_check(&lim, &r, t, &wait_until);
		if (stop != NULL)
			break;
		want = lim.packets - r.packets < size ? (unsigned int)(lim.packets - r.packets) : size;
		got = batch_recv(&b, in_fd, want);
		if (got == 0) {
			wait_readable(in_fd, wait_until);
			continue;
		}
		if (r.packets == 0)
			r.first = t;
		for (i = 0; i < got; i++) {
			b.send_iov[i].iov_len = b.recv_msgs[i].msg_len;
			r.bytes += b.recv_msgs[i].msg_len;
			if (b.recv_msgs[i].msg_hdr.msg_flags & MSG_TRUNC)
				r.truncated++;
		}
		if (forward)
			batch_send(&b, out_fd, got);
		r.packets += got;
		r.batches++;
		r.last = now_s();
	}
	r.stop = stop;
	if (out_fd >= 0)
		close(out_fd);
	close(in_fd);
	return print_result(&r);
}

/* The payload of blast: a pattern, or the start of a template file. */
static void fill_payload(unsigned char *p, size_t size, const char *template_path)
{
	size_t k;
	ssize_t n;
	int fd;

	if (template_path == NULL) {
		for (k = 0; k < size; k++)
			p[k] = (unsigned char)(k % 251);
		return;
	}
	fd = open(template_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		die(template_path);
	n = read(fd, p, size);
	close(fd);
	if (n < 0)
		die(template_path);
	if ((size_t)n != size)
		fail("TEMPLATE is shorter than SIZE");
}

static int run_blast(int argc, char **argv)
{
	struct sockaddr_storage dst;
	socklen_t dst_len;
	struct batch b;
	struct result r = { .mode = "blast", .stop = "count" };
	const char *template_path = argc > 7 ? argv[7] : NULL;
	unsigned long count;
	unsigned int size, i, n;
	size_t payload;
	double deadline;
	uint32_t seq = 0;
	int fd;

	if (argc < 7 || argc > 8)
		return usage();
	dst_len = parse_addr(argv[2], argv[3], &dst);
	payload = (size_t)parse_long(argv[4], 0, 65507, "SIZE");
	count = (unsigned long)parse_long(argv[5], 1, 1L << 40, "COUNT");
	size = (unsigned int)parse_long(argv[6], 1, MAX_BATCH, "BATCH");
	fd = open_sender(&dst);
	/* Slots of exactly the payload size; at least 1 octet so calloc never sees 0. */
	batch_init(&b, size, payload > 0 ? payload : 1, &dst, dst_len);
	for (i = 0; i < size; i++) {
		fill_payload(b.send_iov[i].iov_base, payload, template_path);
		b.send_iov[i].iov_len = payload;
	}
	deadline = now_s() + DEFAULT_SECONDS * 6;
	r.first = now_s();
	while (r.packets < count) {
		if (now_s() >= deadline) {
			r.stop = "deadline";
			break;
		}
		n = count - r.packets < size ? (unsigned int)(count - r.packets) : size;
		if (template_path == NULL && payload >= 4) {
			for (i = 0; i < n; i++, seq++) {
				unsigned char *p = b.send_iov[i].iov_base;

				p[0] = (unsigned char)(seq >> 24);
				p[1] = (unsigned char)(seq >> 16);
				p[2] = (unsigned char)(seq >> 8);
				p[3] = (unsigned char)seq;
			}
		}
		batch_send(&b, fd, n);
		r.packets += n;
		r.bytes += (unsigned long)n * payload;
		r.batches++;
	}
	r.last = now_s();
	close(fd);
	return print_result(&r);
}

#define MAX_FLOWS 65536

/* Split a comma-separated list of IPv4 addresses ("-" alone: none). */
static unsigned int parse_list(const char *text, struct sockaddr_in *out, unsigned int max, int port)
{
	char *list = strdup(text), *tok, *save = NULL;
	unsigned int n = 0;

	if (strcmp(text, "-") != 0) {
		for (tok = strtok_r(list, ",", &save); tok != NULL && n < max; tok = strtok_r(NULL, ",", &save)) {
			memset(&out[n], 0, sizeof(out[n]));
			out[n].sin_family = AF_INET;
			out[n].sin_port = htons((uint16_t)port);
			if (inet_pton(AF_INET, tok, &out[n].sin_addr) != 1)
				fail("not an IPv4 address in a list");
			n++;
		}
	}
	free(list);
	return n;
}

static int run_mblast(int argc, char **argv)
{
	static struct sockaddr_in srcs[MAX_FLOWS], dsts[MAX_FLOWS];
	static int fds[MAX_FLOWS];
	struct sockaddr_storage any;
	struct batch b;
	struct result r = { .mode = "mblast", .stop = "time" };
	unsigned int size, i, n, nsrc, ndst, flows, k = 0;
	size_t payload;
	double seconds, pps = 0.0, start, t;
	uint32_t seq = 0;
	int port;

	if (argc < 8 || argc > 9)
		return usage();
	port = (int)parse_long(argv[3], 1, 65535, "DST_PORT");
	ndst = parse_list(argv[2], dsts, MAX_FLOWS, port);
	payload = (size_t)parse_long(argv[4], 4, 65507, "SIZE");
	seconds = parse_seconds(argv[5]);
	size = (unsigned int)parse_long(argv[6], 1, MAX_BATCH, "BATCH");
	nsrc = parse_list(argv[7], srcs, MAX_FLOWS, 0);
	if (argc == 9)
		pps = (double)parse_long(argv[8], 0, 1L << 32, "PPS");
	if (ndst == 0)
		fail("DSTS: no address");
	flows = nsrc > ndst ? nsrc : ndst;
	for (i = 0; i < flows; i++) {
		fds[i] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (fds[i] < 0)
			die("socket");
		if (nsrc && bind(fds[i], (struct sockaddr *)&srcs[i % nsrc], sizeof(srcs[0])) < 0)
			die("bind SOURCES");
	}
	memset(&any, 0, sizeof(any));
	memcpy(&any, &dsts[0], sizeof(dsts[0]));
	batch_init(&b, size, payload, &any, sizeof(dsts[0]));
	for (i = 0; i < size; i++) {
		fill_payload(b.send_iov[i].iov_base, payload, NULL);
		b.send_iov[i].iov_len = payload;
	}
	start = now_s();
	r.first = start;
	for (;;) {
		int sent;

		t = now_s();
		if (t - start >= seconds)
			break;
		if (pps > 0.0 && (double)r.packets >= pps * (t - start)) {
			struct timespec ts = { 0, 50000 };

			nanosleep(&ts, NULL);
			continue;
		}
		n = size;
		for (i = 0; i < n; i++, seq++) {
			unsigned char *p = b.send_iov[i].iov_base;

			p[0] = (unsigned char)(seq >> 24);
			p[1] = (unsigned char)(seq >> 16);
			p[2] = (unsigned char)(seq >> 8);
			p[3] = (unsigned char)seq;
			b.send_msgs[i].msg_hdr.msg_name = &dsts[k % ndst];
			b.send_msgs[i].msg_hdr.msg_namelen = sizeof(dsts[0]);
		}
		sent = sendmmsg(fds[k], b.send_msgs, n, 0);
		if (sent < 0) {
			note_error(&r, errno);
			sent = 0;
		}
		r.packets += (unsigned long)sent;
		r.bytes += (unsigned long)sent * payload;
		r.batches++;
		k = (k + 1) % flows;
	}
	r.last = now_s();
	for (i = 0; i < flows; i++)
		close(fds[i]);
	return print_result(&r);
}

int main(int argc, char **argv)
{
	prog_name = "relay";
	if (argc < 2)
		return usage();
	if (strcmp(argv[1], "relay") == 0)
		return run_relay(argc, argv, 1);
	if (strcmp(argv[1], "recv") == 0)
		return run_relay(argc, argv, 0);
	if (strcmp(argv[1], "blast") == 0)
		return run_blast(argc, argv);
	if (strcmp(argv[1], "mblast") == 0)
		return run_mblast(argc, argv);
	return usage();
}
