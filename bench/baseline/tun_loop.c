/*
 * tun_loop: the C baselines of the l2tpfast TUN paths (bench/README.md).
 *
 * Each mode does the system calls of one direction of an LNS data plane and no
 * protocol work, so its packet rate is the ceiling the Cython loop is compared to.
 *
 *   tun_loop udp2tun TUN IN BATCH PACKETS [STRIP [SECONDS [IDLE_MS]]]
 *       recvmmsg in batches of BATCH from IN; write() each payload, less its first
 *       STRIP octets (default 0: the L2TP and PPP headers a decapsulation drops),
 *       to the TUN device.  The TUN takes only IP packets: what remains must start
 *       with an IPv4 or IPv6 header, or write() fails with EINVAL (counted in
 *       "errors").
 *   tun_loop tun2udp TUN DST_HOST DST_PORT BATCH PACKETS [PREPEND [SECONDS [IDLE_MS]]]
 *       read() IP packets from the TUN device, each into a slot after PREPEND
 *       octets (default 0: room for the headers an encapsulation adds, left
 *       zero); send them in batches of up to BATCH with sendmmsg.  A batch goes out
 *       as soon as the TUN has nothing more queued: a data plane cannot hold a
 *       packet back to fill a batch.
 *
 * TUN names a device the benchmark made (ip tuntap add dev TUN mode tun), which
 * this program attaches to; a name that does not exist yet makes a device that
 * goes away with the program.  IN, SECONDS, IDLE_MS, the JSON line and the exit
 * status are those of relay.c.  The line {"ready": true, "port": P} on stderr
 * says that the socket and the TUN are attached: packets sent before it are lost.
 */
#include "common.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>

static int usage(void)
{
	fprintf(stderr,
		"usage: tun_loop udp2tun TUN IN BATCH PACKETS [STRIP [SECONDS [IDLE_MS]]]\n"
		"       tun_loop tun2udp TUN DST_HOST DST_PORT BATCH PACKETS [PREPEND [SECONDS [IDLE_MS]]]\n"
		"IN is fd:N (an inherited bound UDP socket) or a port to bind on 0.0.0.0\n");
	return 2;
}

/* IFF_NO_PI: each read() and write() is one bare IP packet, as a data plane sees it. */
static int open_tun(const char *name, int nonblock)
{
	struct ifreq ifr;
	int fd;

	if (strlen(name) == 0 || strlen(name) >= IFNAMSIZ)
		fail("TUN must be a device name of 1 to 15 characters");
	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC | (nonblock ? O_NONBLOCK : 0));
	if (fd < 0)
		die("open /dev/net/tun");
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	memcpy(ifr.ifr_name, name, strlen(name));
	if (ioctl(fd, TUNSETIFF, &ifr) != 0)
		die("TUNSETIFF (attach to the TUN device)");
	return fd;
}

static int run_udp2tun(int argc, char **argv)
{
	struct sockaddr_storage none;
	struct batch b;
	struct limits lim;
	struct result r = { .mode = "udp2tun", .stop = "count" };
	unsigned int size, i, want, got, len, strip = 0;
	int tun_fd, in_fd, port = 0, tries;
	double t, wait_until = 0.0;
	const char *stop = "count";
	ssize_t w = -1;

	if (argc < 6 || argc > 9)
		return usage();
	size = (unsigned int)parse_long(argv[4], 1, MAX_BATCH, "BATCH");
	if (argc > 6)
		strip = (unsigned int)parse_long(argv[6], 0, SLOT_SIZE - 1, "STRIP");
	tun_fd = open_tun(argv[2], 0);
	in_fd = open_receiver(argv[3], &port);
	memset(&none, 0, sizeof(none));
	batch_init(&b, size, SLOT_SIZE, &none, 0);
	limits_init(&lim, (unsigned long)parse_long(argv[5], 1, 1L << 40, "PACKETS"), argc, argv, 7);
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
			len = b.recv_msgs[i].msg_len;
			if (b.recv_msgs[i].msg_hdr.msg_flags & MSG_TRUNC)
				r.truncated++;
			if (len <= strip) {
				note_error(&r, EMSGSIZE);
				continue;
			}
			/* One write() per packet: TUN has no batch write, which is the point of this baseline. */
			for (tries = 0; tries < MAX_RETRIES; tries++) {
				w = write(tun_fd, b.buf + (size_t)i * SLOT_SIZE + strip, len - strip);
				if (w >= 0 || errno != EINTR)
					break;
			}
			if (w < 0)
				note_error(&r, errno);
			else
				r.bytes += (unsigned long)w;
		}
		r.packets += got;
		r.batches++;
		r.last = now_s();
	}
	r.stop = stop;
	close(in_fd);
	close(tun_fd);
	return print_result(&r);
}

static int run_tun2udp(int argc, char **argv)
{
	struct sockaddr_storage dst;
	socklen_t dst_len;
	struct batch b;
	struct limits lim;
	struct result r = { .mode = "tun2udp", .stop = "count" };
	unsigned int size, want, got, prepend = 0;
	int tun_fd, out_fd, tries;
	double t, wait_until = 0.0;
	const char *stop = "count";
	size_t room;
	ssize_t n;

	if (argc < 7 || argc > 10)
		return usage();
	dst_len = parse_addr(argv[3], argv[4], &dst);
	size = (unsigned int)parse_long(argv[5], 1, MAX_BATCH, "BATCH");
	if (argc > 7)
		prepend = (unsigned int)parse_long(argv[7], 0, SLOT_SIZE - 1, "PREPEND");
	room = SLOT_SIZE - prepend;
	/* Non-blocking: read() until the TUN queue is empty, then send what was read. */
	tun_fd = open_tun(argv[2], 1);
	out_fd = open_sender(&dst);
	batch_init(&b, size, SLOT_SIZE, &dst, dst_len);
	limits_init(&lim, (unsigned long)parse_long(argv[6], 1, 1L << 40, "PACKETS"), argc, argv, 8);
	print_ready(0);

	for (;;) {
		t = now_s();
		stop = limits_check(&lim, &r, t, &wait_until);
		if (stop != NULL)
			break;
		want = lim.packets - r.packets < size ? (unsigned int)(lim.packets - r.packets) : size;
		got = 0;
		for (tries = 0; got < want && tries < MAX_RETRIES; tries++) {
			n = read(tun_fd, b.buf + (size_t)got * SLOT_SIZE + prepend, room);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				die("read from the TUN device");
			}
			/* A packet longer than the slot comes back cut to its size. */
			if ((size_t)n == room)
				r.truncated++;
			b.send_iov[got].iov_len = prepend + (size_t)n;
			r.bytes += prepend + (unsigned long)n;
			got++;
		}
		if (got == 0) {
			wait_readable(tun_fd, wait_until);
			continue;
		}
		if (r.packets == 0)
			r.first = t;
		batch_send(&b, out_fd, got);
		r.packets += got;
		r.batches++;
		r.last = now_s();
	}
	r.stop = stop;
	close(out_fd);
	close(tun_fd);
	return print_result(&r);
}

int main(int argc, char **argv)
{
	prog_name = "tun_loop";
	if (argc < 2)
		return usage();
	if (strcmp(argv[1], "udp2tun") == 0)
		return run_udp2tun(argc, argv);
	if (strcmp(argv[1], "tun2udp") == 0)
		return run_tun2udp(argc, argv);
	return usage();
}
