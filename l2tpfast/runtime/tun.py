"""A Linux TUN device: the data plane's side of the host's IP stack.

The PPP frames of an L2TP session (RFC 2661 section 1) carry IP packets; the data plane takes
them out of PPP and writes them here, and reads what the host routes into the device to put it
back into PPP. The device is a layer-3 TUN without the packet-information prefix (IFF_TUN |
IFF_NO_PI, Documentation/networking/tuntap.rst): every read() is one whole IPv4 or IPv6 packet,
every write() must be one. Configuration (link up, addresses, MTU, routes) goes through `ip` from
iproute2, run with a timeout. Nothing here knows L2TP or PPP.

A device opened here is not persistent: it disappears when its last descriptor is closed.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
import subprocess
from collections.abc import Sequence
from types import TracebackType
from typing import Self

# <linux/if_tun.h>, <linux/if.h>
TUNSETIFF = 0x400454CA  # _IOW('T', 202, int)
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_MULTI_QUEUE = 0x0100
IFNAMSIZ = 16

#: The clone device; a module attribute so that tests can point it elsewhere.
TUN_PATH = "/dev/net/tun"

# struct ifreq: char ifr_name[IFNAMSIZ]; then a union of 24 bytes whose first member here is
# short ifr_flags.
_IFREQ = struct.Struct(f"={IFNAMSIZ}sH22x")
# IPv4 total length and IPv6 payload length are 16-bit; no packet read from a TUN is longer.
_MAX_PACKET = 65535
#: How long one `ip` command may take; a hung one must not hang the data plane's set-up.
IP_TIMEOUT = 5.0
_STAT_NAMES = tuple(f"{way}_{what}" for way in ("rx", "tx") for what in ("packets", "bytes", "dropped"))
# The packet is lost and counted, as on a wire, and higher layers recover. The queue is full or
# memory short; or the link is down (EIO) or the packet is neither IPv4 nor IPv6 by its first
# nibble (EINVAL), both counted in rx_dropped: a peer's garbage must not stop the data plane.
_WRITE_DROP_ERRNOS = frozenset(
    {errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.ENOMEM, errno.EIO, errno.EINVAL}
)


def _open_hint(err: int, multi_queue: bool) -> str:
    if err in (errno.ENOENT, errno.ENODEV, errno.ENXIO):
        return f"no {TUN_PATH}: load the tun module (`modprobe tun`) or `mknod {TUN_PATH} c 10 200`"
    if err in (errno.EPERM, errno.EACCES):
        return "needs CAP_NET_ADMIN: run as root or grant the capability"
    if err == errno.EBUSY:
        return "the name is taken by a device in use; choose another name or a '%d' pattern"
    if err == errno.EINVAL and multi_queue:
        return "a device of this name exists without multi-queue (or the kernel lacks IFF_MULTI_QUEUE)"
    if err == errno.EINVAL:
        return "a device of this name exists and is not a free TUN device (or it is multi-queue)"
    return "see `dmesg` for the kernel's reason"


class TunDevice:
    """One queue of a TUN device (IFF_TUN | IFF_NO_PI), non-blocking."""

    def __init__(self, fd: int, name: str) -> None:
        """Wrap a descriptor already attached with TUNSETIFF; `open` is the usual way in."""
        self._fd = fd
        self.name = name

    @classmethod
    def open(cls, name: str = "l2tp%d", *, mtu: int = 1500, multi_queue: bool = False) -> Self:
        """Create (or, with `multi_queue`, attach one more queue to) the device `name`.

        A '%d' in `name` is filled in by the kernel with the first free number; `name` on the
        result is the real one. The link stays down until `up`.
        """
        encoded = name.encode()
        if not encoded or len(encoded) >= IFNAMSIZ or b"/" in encoded or b"\0" in encoded:
            raise ValueError(f"TUN device name {name!r}: 1 to {IFNAMSIZ - 1} bytes, no '/' or NUL")
        flags = IFF_TUN | IFF_NO_PI | (IFF_MULTI_QUEUE if multi_queue else 0)
        try:
            fd = os.open(TUN_PATH, os.O_RDWR | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as exc:
            raise OSError(
                exc.errno, f"cannot open TUN {name}: {_open_hint(exc.errno or 0, multi_queue)}"
            ) from exc
        try:
            answer = fcntl.ioctl(fd, TUNSETIFF, _IFREQ.pack(encoded, flags))
        except OSError as exc:
            os.close(fd)
            hint = _open_hint(exc.errno or 0, multi_queue)
            raise OSError(exc.errno, f"cannot create TUN {name}: {exc.strerror}; {hint}") from exc
        real_name = _IFREQ.unpack(answer)[0].rstrip(b"\0").decode()
        device = cls(fd, real_name)
        try:
            device.set_mtu(mtu)
        except BaseException:
            device.close()
            raise
        return device

    def fileno(self) -> int:
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def up(self, addresses: Sequence[str] = (), *, queue: int = 0) -> None:
        """Bring the link up and add `addresses` ("10.0.0.1/24", "2001:db8::1/64").

        ``queue``: the device's transmit queue in packets (what the host has routed into it and
        we have not read yet); the kernel's 500 overflows in a burst while a loop is sending.
        """
        if queue:
            self._ip("link", "set", "dev", self.name, "txqueuelen", str(queue))
        self._ip("link", "set", "dev", self.name, "up")
        for address in addresses:
            # nodad: a TUN has no neighbours to ask, and a tentative address cannot be bound for
            # the second or so that Duplicate Address Detection (RFC 4862 5.4) would take.
            extra = ("nodad",) if ":" in address else ()
            self._ip("addr", "add", address, "dev", self.name, *extra)

    def set_mtu(self, mtu: int) -> None:
        self._ip("link", "set", "dev", self.name, "mtu", str(mtu))

    def add_route(self, prefix: str, *, append: bool = False) -> None:
        """Route `prefix` ("198.51.100.0/24", "2001:db8:1::/48") into this device.

        ``append`` adds the route beside others for the same prefix on other devices (several
        PPP sessions with one peer address, each on its own device), as `ip route append` does.
        """
        self._ip("route", "append" if append else "add", prefix, "dev", self.name)

    def del_route(self, prefix: str) -> None:
        self._ip("route", "del", prefix, "dev", self.name)

    def read(self) -> bytes | None:
        """One IP packet the host routed into the device, or None when none is queued."""
        try:
            return os.read(self._fd, _MAX_PACKET)
        except BlockingIOError:
            return None

    def write(self, packet: bytes) -> bool:
        """Hand one IP packet to the host; False when the kernel dropped it (full, down, not IP)."""
        try:
            os.write(self._fd, packet)
        except OSError as exc:
            if exc.errno in _WRITE_DROP_ERRNOS:
                return False
            raise OSError(
                exc.errno, f"TUN {self.name}: write of {len(packet)} bytes: {exc.strerror}"
            ) from exc
        return True

    def stats(self) -> dict[str, int]:
        """The kernel's counters: rx_* is what we wrote (the host received), tx_* what we read.

        Read from /sys/class/net, which shows the network namespace it was mounted in (`ip netns
        exec` mounts the namespace's own).
        """
        base = f"/sys/class/net/{self.name}/statistics"
        out: dict[str, int] = {}
        for stat in _STAT_NAMES:
            with open(f"{base}/{stat}") as f:
                out[stat] = int(f.read())
        return out

    def close(self) -> None:
        """Detach this queue; the device goes away with its last queue. Safe to call twice."""
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<TunDevice {self.name} fd={self._fd}>"

    def _ip(self, *args: str) -> None:
        command = ["ip", *args]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=IP_TIMEOUT, check=False)
        except FileNotFoundError as exc:
            raise OSError(exc.errno, f"TUN {self.name}: `ip` not found; install iproute2") from exc
        except subprocess.TimeoutExpired as exc:
            raise OSError(errno.ETIMEDOUT, f"TUN {self.name}: `{' '.join(command)}` hung") from exc
        if done.returncode != 0:
            raise OSError(
                f"TUN {self.name}: `{' '.join(command)}` exited {done.returncode}: {done.stderr.strip()}"
            )
