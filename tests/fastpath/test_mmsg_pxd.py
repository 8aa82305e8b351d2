"""``src_pyx/mmsg.pxd`` compiles, links and matches the kernel's view (STYLE.md 4).

No extension of the package uses every declaration yet, and a wrong extern
declaration only shows when C code uses it.  So this test builds a throwaway
module in a temporary directory that cimports ``mmsg`` (never part of
``setup.py``), with implicit function declarations as errors, and drives it
through a real ``sendmmsg``/``recvmmsg`` round trip on loopback UDP sockets,
reading the IP_PKTINFO destination address from the ancillary data.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import shutil
import socket
import subprocess
import sys
import sysconfig
import textwrap
import time
from pathlib import Path
from types import ModuleType

import pytest
from tools import require_ipv6_loopback

ROOT = Path(__file__).resolve().parents[2]
SRC_PYX = ROOT / "src_pyx"
BUILD_TIMEOUT = 120.0
RECV_TIMEOUT_MS = 2000
RECV_BUFSIZE = 2048
#: Distinct sizes, including an empty datagram and one longer than the receive buffer.
SIZES = (0, 1, 63, 64, 512, 1400, 1472, 8000)
LINUX_IP_PKTINFO = 8  # <linux/in.h>; Python 3.11's socket module lacks the name

PROBE_PYX = r'''
# cython: language_level=3
"""Throwaway module of test_mmsg_pxd.py: every declaration of mmsg.pxd, used once."""

import os

from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset

cimport mmsg

cdef enum:
    CONTROL_SIZE = 128  # per slot: room for one in6_pktinfo cmsg and then some


def constants():
    return {
        "AF_INET": mmsg.AF_INET, "AF_INET6": mmsg.AF_INET6,
        "MSG_DONTWAIT": mmsg.MSG_DONTWAIT, "MSG_WAITFORONE": mmsg.MSG_WAITFORONE,
        "MSG_TRUNC": mmsg.MSG_TRUNC, "MSG_CTRUNC": mmsg.MSG_CTRUNC,
        "IPPROTO_IP": mmsg.IPPROTO_IP, "IPPROTO_IPV6": mmsg.IPPROTO_IPV6,
        "IPPROTO_UDP": mmsg.IPPROTO_UDP, "IP_PKTINFO": mmsg.IP_PKTINFO,
        "IPV6_PKTINFO": mmsg.IPV6_PKTINFO, "IPV6_RECVPKTINFO": mmsg.IPV6_RECVPKTINFO,
        "EAGAIN": mmsg.EAGAIN, "EWOULDBLOCK": mmsg.EWOULDBLOCK, "EINTR": mmsg.EINTR,
        "POLLIN": mmsg.POLLIN, "EFD_NONBLOCK": mmsg.EFD_NONBLOCK,
        "EFD_CLOEXEC": mmsg.EFD_CLOEXEC,
        "sizeof_in_pktinfo": sizeof(mmsg.in_pktinfo),
        "sizeof_in6_pktinfo": sizeof(mmsg.in6_pktinfo),
        "sizeof_sockaddr_in": sizeof(mmsg.sockaddr_in),
        "sizeof_sockaddr_in6": sizeof(mmsg.sockaddr_in6),
        "sizeof_sockaddr_storage": sizeof(mmsg.sockaddr_storage),
        "sizeof_mmsghdr": sizeof(mmsg.mmsghdr),
        "htons_0x1234": mmsg.htons(0x1234), "ntohs_0x1234": mmsg.ntohs(0x1234),
        "htonl_0x12345678": mmsg.htonl(0x12345678), "ntohl_0x12345678": mmsg.ntohl(0x12345678),
    }


cdef mmsg.socklen_t fill_sockaddr(mmsg.sockaddr_storage* ss, int family, bytes packed, int port) except 0:
    cdef mmsg.sockaddr_in* sin
    cdef mmsg.sockaddr_in6* sin6
    memset(ss, 0, sizeof(mmsg.sockaddr_storage))
    if family == mmsg.AF_INET and len(packed) == 4:
        sin = <mmsg.sockaddr_in*>ss
        sin.sin_family = mmsg.AF_INET
        sin.sin_port = mmsg.htons(port)
        memcpy(&sin.sin_addr, <const char*>packed, 4)
        return sizeof(mmsg.sockaddr_in)
    if family == mmsg.AF_INET6 and len(packed) == 16:
        sin6 = <mmsg.sockaddr_in6*>ss
        sin6.sin6_family = mmsg.AF_INET6
        sin6.sin6_port = mmsg.htons(port)
        memcpy(sin6.sin6_addr.s6_addr, <const char*>packed, 16)
        return sizeof(mmsg.sockaddr_in6)
    raise ValueError("bad address")


cdef tuple sockaddr_tuple(const mmsg.sockaddr_storage* ss):
    cdef const mmsg.sockaddr_in* sin
    cdef const mmsg.sockaddr_in6* sin6
    if ss.ss_family == mmsg.AF_INET:
        sin = <const mmsg.sockaddr_in*>ss
        return (mmsg.AF_INET, (<const char*>&sin.sin_addr)[:4], mmsg.ntohs(sin.sin_port))
    if ss.ss_family == mmsg.AF_INET6:
        sin6 = <const mmsg.sockaddr_in6*>ss
        return (mmsg.AF_INET6, (<const char*>sin6.sin6_addr.s6_addr)[:16], mmsg.ntohs(sin6.sin6_port))
    return (ss.ss_family, b"", 0)


def send_batch(int fd, list payloads, int family, bytes packed_addr, int port):
    """One sendmmsg of every payload to one address; returns msg_len of each slot sent."""
    cdef unsigned int n = len(payloads)
    cdef mmsg.sockaddr_storage dst
    cdef mmsg.socklen_t dst_len = fill_sockaddr(&dst, family, packed_addr, port)
    cdef mmsg.mmsghdr* msgs = <mmsg.mmsghdr*>calloc(n, sizeof(mmsg.mmsghdr))
    cdef mmsg.iovec* iov = <mmsg.iovec*>calloc(n, sizeof(mmsg.iovec))
    cdef bytes payload
    cdef unsigned int i
    cdef int sent, err = 0
    if msgs == NULL or iov == NULL:
        free(msgs)
        free(iov)
        raise MemoryError()
    try:
        for i in range(n):
            payload = payloads[i]
            # The list keeps each bytes object, and so this pointer, alive until we return.
            iov[i].iov_base = <void*><const char*>payload
            iov[i].iov_len = len(payload)
            msgs[i].msg_hdr.msg_name = &dst
            msgs[i].msg_hdr.msg_namelen = dst_len
            msgs[i].msg_hdr.msg_iov = &iov[i]
            msgs[i].msg_hdr.msg_iovlen = 1
        with nogil:
            sent = mmsg.sendmmsg(fd, msgs, n, 0)
            if sent < 0:
                err = mmsg.errno
        if sent < 0:
            raise OSError(err, os.strerror(err))
        return [msgs[i].msg_len for i in range(<unsigned int>sent)]
    finally:
        free(msgs)
        free(iov)


cdef tuple slot_pktinfo(mmsg.msghdr* hdr):
    cdef mmsg.cmsghdr* cm = mmsg.CMSG_FIRSTHDR(hdr)
    cdef mmsg.in_pktinfo pi4
    cdef mmsg.in6_pktinfo pi6
    cdef int guard = 0
    while cm != NULL and guard < 16:
        guard += 1
        if (cm.cmsg_level == mmsg.IPPROTO_IP and cm.cmsg_type == mmsg.IP_PKTINFO
                and cm.cmsg_len >= mmsg.CMSG_LEN(sizeof(mmsg.in_pktinfo))):
            memcpy(&pi4, mmsg.CMSG_DATA(cm), sizeof(pi4))
            return (mmsg.AF_INET, (<const char*>&pi4.ipi_addr)[:4], pi4.ipi_ifindex)
        if (cm.cmsg_level == mmsg.IPPROTO_IPV6 and cm.cmsg_type == mmsg.IPV6_PKTINFO
                and cm.cmsg_len >= mmsg.CMSG_LEN(sizeof(mmsg.in6_pktinfo))):
            memcpy(&pi6, mmsg.CMSG_DATA(cm), sizeof(pi6))
            return (mmsg.AF_INET6, (<const char*>pi6.ipi6_addr.s6_addr)[:16], pi6.ipi6_ifindex)
        cm = mmsg.CMSG_NXTHDR(hdr, cm)
    return None


def recv_batch(int fd, unsigned int vlen, size_t bufsize, int timeout_ms):
    """recvmmsg until vlen datagrams arrived or timeout_ms passed.

    Returns one (data, msg_len, msg_flags, source, pktinfo) tuple per datagram.
    """
    cdef char* bufs = <char*>calloc(vlen, bufsize)
    cdef char* control = <char*>calloc(vlen, CONTROL_SIZE)
    cdef mmsg.sockaddr_storage* names = <mmsg.sockaddr_storage*>calloc(vlen, sizeof(mmsg.sockaddr_storage))
    cdef mmsg.iovec* iov = <mmsg.iovec*>calloc(vlen, sizeof(mmsg.iovec))
    cdef mmsg.mmsghdr* msgs = <mmsg.mmsghdr*>calloc(vlen, sizeof(mmsg.mmsghdr))
    cdef mmsg.pollfd pfd
    cdef mmsg.timespec now, deadline
    cdef unsigned int got = 0, i
    cdef int n, err = 0, calls = 0
    cdef long remaining_ms
    try:
        if bufs == NULL or control == NULL or names == NULL or iov == NULL or msgs == NULL:
            raise MemoryError()
        if CONTROL_SIZE < mmsg.CMSG_SPACE(sizeof(mmsg.in6_pktinfo)):
            raise AssertionError("CONTROL_SIZE too small")
        for i in range(vlen):
            iov[i].iov_base = bufs + i * bufsize
            iov[i].iov_len = bufsize
            msgs[i].msg_hdr.msg_name = &names[i]
            msgs[i].msg_hdr.msg_namelen = sizeof(mmsg.sockaddr_storage)
            msgs[i].msg_hdr.msg_iov = &iov[i]
            msgs[i].msg_hdr.msg_iovlen = 1
            msgs[i].msg_hdr.msg_control = control + i * CONTROL_SIZE
            msgs[i].msg_hdr.msg_controllen = CONTROL_SIZE
        mmsg.clock_gettime(mmsg.CLOCK_MONOTONIC, &deadline)
        deadline.tv_sec += timeout_ms // 1000
        deadline.tv_nsec += (timeout_ms % 1000) * 1000000
        pfd.fd = fd
        pfd.events = mmsg.POLLIN
        with nogil:
            while got < vlen and calls < 1000:
                calls += 1
                mmsg.clock_gettime(mmsg.CLOCK_MONOTONIC, &now)
                remaining_ms = ((deadline.tv_sec - now.tv_sec) * 1000
                                + (deadline.tv_nsec - now.tv_nsec) // 1000000)
                if remaining_ms <= 0:
                    break
                n = mmsg.poll(&pfd, 1, remaining_ms)
                if n <= 0:
                    if n < 0 and mmsg.errno == mmsg.EINTR:
                        continue
                    break
                # Readable: MSG_WAITFORONE returns at once with what is queued, up to the rest.
                n = mmsg.recvmmsg(fd, msgs + got, vlen - got, mmsg.MSG_WAITFORONE, NULL)
                if n < 0:
                    err = mmsg.errno
                    if err == mmsg.EAGAIN or err == mmsg.EWOULDBLOCK or err == mmsg.EINTR:
                        err = 0
                        continue
                    break
                got += n
        if err:
            raise OSError(err, os.strerror(err))
        return [
            (
                (bufs + i * bufsize)[:min(msgs[i].msg_len, bufsize)],
                msgs[i].msg_len,
                msgs[i].msg_hdr.msg_flags,
                sockaddr_tuple(&names[i]),
                slot_pktinfo(&msgs[i].msg_hdr),
            )
            for i in range(got)
        ]
    finally:
        free(bufs)
        free(control)
        free(names)
        free(iov)
        free(msgs)


def eventfd_poll():
    """An eventfd read while empty, then written, polled and read: (empty errno, revents, value)."""
    cdef unsigned long long value = 0
    cdef int efd = mmsg.eventfd(0, mmsg.EFD_NONBLOCK | mmsg.EFD_CLOEXEC)
    cdef int empty_errno = 0
    cdef mmsg.pollfd pfd
    if efd < 0:
        raise OSError(mmsg.errno, "eventfd")
    try:
        if mmsg.read(efd, &value, 8) < 0:
            empty_errno = mmsg.errno
        value = 3
        if mmsg.write(efd, &value, 8) != 8:
            raise OSError(mmsg.errno, "write")
        pfd.fd = efd
        pfd.events = mmsg.POLLIN
        pfd.revents = 0
        if mmsg.poll(&pfd, 1, 1000) != 1:
            raise OSError(mmsg.errno, "poll")
        value = 0
        if mmsg.read(efd, &value, 8) != 8:
            raise OSError(mmsg.errno, "read")
        return empty_errno, pfd.revents, value
    finally:
        mmsg.close(efd)


def monotonic_ns():
    cdef mmsg.timespec ts
    mmsg.clock_gettime(mmsg.CLOCK_MONOTONIC, &ts)
    return ts.tv_sec * 1000000000 + ts.tv_nsec
'''

SETUP_PY = """
import sys
from Cython.Build import cythonize
from setuptools import Extension, setup

ext = Extension(
    "_mmsg_probe",
    ["_mmsg_probe.pyx"],
    # A missing prototype (say, recvmmsg without _GNU_SOURCE) must fail, not warn.
    extra_compile_args=["-O1", "-Werror=implicit-function-declaration", "-Werror=incompatible-pointer-types"],
)
setup(
    ext_modules=cythonize([ext], include_path=[sys.argv.pop(1)], quiet=True, force=True),
    script_args=["-q", "build_ext", "--inplace"],
)
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The throwaway module, compiled once for this file."""
    workdir = tmp_path_factory.mktemp("mmsg_probe")
    (workdir / "_mmsg_probe.pyx").write_text(textwrap.dedent(PROBE_PYX).lstrip())
    (workdir / "setup_probe.py").write_text(SETUP_PY)
    done = subprocess.run(
        [sys.executable, "setup_probe.py", str(SRC_PYX)],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"probe build failed:\n{done.stdout[-4000:]}\n{done.stderr[-6000:]}"
    built = sorted(workdir.glob("_mmsg_probe*.so"))
    assert built, f"no extension built in {workdir}: {sorted(p.name for p in workdir.iterdir())}"
    loader = importlib.machinery.ExtensionFileLoader("_mmsg_probe", str(built[0]))
    spec = importlib.util.spec_from_file_location("_mmsg_probe", built[0], loader=loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _guard_source() -> str:
    """The C text of mmsg.pxd's ``cdef extern from *`` block: the _GNU_SOURCE guard."""
    text = (SRC_PYX / "mmsg.pxd").read_text()
    return textwrap.dedent(text[text.index("cdef extern from *:") :].split('"""')[1])


@pytest.mark.parametrize(
    ("prelude", "compiles"),
    [
        pytest.param('#include "Python.h"\n', True, id="after-Python.h"),
        pytest.param("#define _GNU_SOURCE\n#include <stdio.h>\n", True, id="defined-first"),
        pytest.param("#include <stdio.h>\n", False, id="never-defined"),
        pytest.param("#include <stdio.h>\n#define _GNU_SOURCE\n", False, id="defined-too-late"),
    ],
)
def test_gnu_source_guard(tmp_path: Path, prelude: str, compiles: bool) -> None:
    # Cython puts Python.h first; it must be what makes recvmmsg visible, and the guard
    # must catch a _GNU_SOURCE that comes after the first glibc header.
    gcc = shutil.which("gcc")
    assert gcc is not None, "gcc is needed to build the extensions"
    source = tmp_path / "guard.c"
    source.write_text(prelude + _guard_source() + "#include <sys/socket.h>\nvoid *p = (void *)recvmmsg;\n")
    include = sysconfig.get_paths()["include"]
    done = subprocess.run(
        [gcc, "-fsyntax-only", "-Werror=implicit-function-declaration", f"-I{include}", str(source)],
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT,
        check=False,
    )
    assert (done.returncode == 0) == compiles, done.stderr
    if not compiles:
        assert "#error" in done.stderr and "mmsg.pxd:" in done.stderr, done.stderr


def _payload(index: int, size: int) -> bytes:
    """Bytes that differ per datagram and per position, so a shifted or swapped one shows."""
    return bytes((index * 31 + k * 7 + (k >> 8)) & 0xFF for k in range(size))


def test_constants_match_the_socket_module(probe: ModuleType) -> None:
    c = probe.constants()
    for name in (
        "AF_INET",
        "AF_INET6",
        "MSG_DONTWAIT",
        "MSG_TRUNC",
        "MSG_CTRUNC",
        "IPPROTO_IP",
        "IPPROTO_IPV6",
        "IPPROTO_UDP",
        "IPV6_PKTINFO",
        "IPV6_RECVPKTINFO",
    ):
        assert c[name] == getattr(socket, name), name
    assert c["IP_PKTINFO"] == LINUX_IP_PKTINFO
    assert c["MSG_WAITFORONE"] == 0x10000  # <bits/socket.h>
    assert c["POLLIN"] == 1
    assert c["sizeof_in_pktinfo"] == 12
    assert c["sizeof_in6_pktinfo"] == 20
    assert c["sizeof_sockaddr_in"] == 16
    assert c["sizeof_sockaddr_in6"] == 28
    assert c["sizeof_sockaddr_storage"] == 128
    assert c["htons_0x1234"] == c["ntohs_0x1234"] == socket.htons(0x1234)
    assert c["htonl_0x12345678"] == c["ntohl_0x12345678"] == socket.htonl(0x12345678)


def _round_trip(probe: ModuleType, family: socket.AddressFamily, bind: str, dst: str) -> None:
    """Eight datagrams in one sendmmsg, read back with recvmmsg; every length, byte,
    source address and IP_PKTINFO destination checked."""
    c = probe.constants()
    with socket.socket(family, socket.SOCK_DGRAM) as rx, socket.socket(family, socket.SOCK_DGRAM) as tx:
        if family == socket.AF_INET:
            rx.setsockopt(socket.IPPROTO_IP, c["IP_PKTINFO"], 1)
        else:
            rx.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
        rx.bind((bind, 0))
        tx.bind((dst, 0))
        port = rx.getsockname()[1]
        payloads = [_payload(i, size) for i, size in enumerate(SIZES)]
        sent = probe.send_batch(tx.fileno(), payloads, family, socket.inet_pton(family, dst), port)
        assert sent == list(SIZES)
        got = probe.recv_batch(rx.fileno(), len(SIZES), RECV_BUFSIZE, RECV_TIMEOUT_MS)
        assert len(got) == len(SIZES)
        src = (family, socket.inet_pton(family, dst), tx.getsockname()[1])
        lo_index = socket.if_nametoindex("lo")
        for (data, msg_len, flags, source, pktinfo), payload in zip(got, payloads, strict=True):
            # recvmmsg's msg_len is the octets copied; a longer datagram is cut and flagged.
            assert msg_len == min(len(payload), RECV_BUFSIZE)
            assert data == payload[:RECV_BUFSIZE], len(payload)
            assert bool(flags & c["MSG_TRUNC"]) == (len(payload) > RECV_BUFSIZE)
            assert not flags & c["MSG_CTRUNC"]
            assert source == src
            assert pktinfo == (family, socket.inet_pton(family, dst), lo_index)


def test_ipv4_batch_round_trip_with_pktinfo(probe: ModuleType) -> None:
    # Bound to the wildcard and sent to 127.0.0.2: only IP_PKTINFO can say where it went.
    _round_trip(probe, socket.AF_INET, "0.0.0.0", "127.0.0.2")


def test_ipv6_batch_round_trip_with_pktinfo(probe: ModuleType) -> None:
    require_ipv6_loopback()
    _round_trip(probe, socket.AF_INET6, "::", "::1")


def test_recv_batch_times_out_empty(probe: ModuleType) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        started = time.monotonic()
        assert probe.recv_batch(rx.fileno(), 4, 64, 50) == []
        assert time.monotonic() - started < 2.0


def test_eventfd_poll_read_write_close(probe: ModuleType) -> None:
    c = probe.constants()
    empty_errno, revents, value = probe.eventfd_poll()
    assert empty_errno == c["EAGAIN"]
    assert revents & c["POLLIN"]
    assert value == 3


def test_clock_is_the_monotonic_clock_of_python(probe: ModuleType) -> None:
    before = time.monotonic_ns()
    now = probe.monotonic_ns()
    after = time.monotonic_ns()
    assert before <= now <= after
