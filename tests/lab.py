"""Lab helpers of the interop tests: network namespaces, captures, the tshark judge, xl2tpd peers.

A plain module (tests/ is on sys.path): ``import lab``. Everything here runs as root on Linux and
cleans up after itself, also when the test body raises (LAB.md "Two hosts on one machine").
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import select
import signal
import subprocess
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

#: How long a command of the set-up may take; a hung ``ip`` or ``ethtool`` must not hang the suite.
COMMAND_TIMEOUT = 30.0
#: SIGTERM first; what is still alive after this long gets SIGKILL.
TERMINATE_GRACE = 3.0
L2TP_PORT = 1701
#: epan/proto.h expert severities; "Warn" and above is a problem of the capture.
PI_WARN = 0x00600000
EXPERT_SEVERITIES = {
    0x00100000: "Comment",
    0x00200000: "Chat",
    0x00400000: "Note",
    PI_WARN: "Warning",
    0x00800000: "Error",
}

_counter = itertools.count()


class LabError(RuntimeError):
    """The lab could not be set up or a peer did not do what was waited for."""


def _ip(*args: str) -> None:
    _checked(["ip", *args])


def _checked(command: Sequence[str], **kw: Any) -> subprocess.CompletedProcess[str]:
    kw.setdefault("timeout", COMMAND_TIMEOUT)
    kw.setdefault("text", True)
    if "stdout" not in kw and "stderr" not in kw:
        kw.setdefault("capture_output", True)
    done: subprocess.CompletedProcess[str] = subprocess.run(list(command), check=False, **kw)
    if done.returncode != 0:
        error = subprocess.CalledProcessError(done.returncode, done.args, done.stdout, done.stderr)
        # CalledProcessError's message leaves stderr out, and stderr is what says why.
        error.add_note(f"stderr: {(done.stderr or '').strip()}")
        raise error
    return done


def stop_process(
    proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, grace: float = TERMINATE_GRACE
) -> None:
    """Send ``sig`` to the process group of ``proc`` and reap it; SIGKILL after ``grace`` seconds.

    The group, because ``popen`` starts each process in its own session: xl2tpd's pppd children go
    with it.
    """
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(grace)


def wait_for_line(path: Path, pattern: str, timeout: float, proc: subprocess.Popen[Any] | None = None) -> str:
    """Poll a log file until ``pattern`` (a regular expression) matches a line; return that line."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text(errors="replace") if path.exists() else ""
        for line in text.splitlines():
            if regex.search(line):
                return line
        if proc is not None and proc.poll() is not None:
            raise LabError(
                f"{path.name}: process exited {proc.returncode} before /{pattern}/:\n{text[-3000:]}"
            )
        if time.monotonic() >= deadline:
            raise LabError(f"{path.name}: /{pattern}/ not seen within {timeout} s:\n{text[-3000:]}")
        time.sleep(0.05)


class NetnsPair:
    """Two network namespaces joined by a veth pair: side ``a`` (the LAC) and side ``b`` (the LNS).

    The namespace names carry the pid and a counter, so parallel runs and tests never collide.
    """

    a_addr = "192.0.2.1"
    b_addr = "192.0.2.2"
    a_addr6 = "2001:db8::1"
    b_addr6 = "2001:db8::2"
    # The veth ends are created inside their namespaces, so these names cannot clash between runs.
    a_if = "veth-lac"
    b_if = "veth-lns"

    def __init__(self, prefix: str = "l2f", *, checksum_offload: bool = False) -> None:
        base = f"{prefix}-{os.getpid()}-{next(_counter)}"
        self.a = f"{base}-a"
        self.b = f"{base}-b"
        self._procs: list[subprocess.Popen[bytes]] = []
        self._created: list[str] = []
        #: True keeps veth's checksum offload (the kernel's default; UDP GSO needs it); the tests
        #: turn it off so that captures show real checksums.
        self.checksum_offload = checksum_offload

    def __enter__(self) -> Self:
        try:
            self._set_up()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _set_up(self) -> None:
        for ns in (self.a, self.b):
            _ip("netns", "add", ns)
            self._created.append(ns)
        peer = ["peer", "name", self.b_if, "netns", self.b]
        _ip("link", "add", self.a_if, "netns", self.a, "type", "veth", *peer)
        for ns, ifname, addr, addr6 in (
            (self.a, self.a_if, self.a_addr, self.a_addr6),
            (self.b, self.b_if, self.b_addr, self.b_addr6),
        ):
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", ifname)
            # nodad: without it the address stays "tentative" for a second or two and bind() fails.
            _ip("-n", ns, "addr", "add", f"{addr6}/64", "dev", ifname, "nodad")
            _ip("-n", ns, "link", "set", ifname, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
            # veth leaves the UDP checksum to an offload that never happens: captures show it bad.
            if not self.checksum_offload:
                self.run(ns, "ethtool", "-K", ifname, "tx", "off")

    def addr_of(self, ns: str) -> str:
        """The IPv4 address of namespace ``ns`` on the veth."""
        return {self.a: self.a_addr, self.b: self.b_addr}[ns]

    def if_of(self, ns: str) -> str:
        """The veth interface inside namespace ``ns``."""
        return {self.a: self.a_if, self.b: self.b_if}[ns]

    def run(self, ns: str, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        """Run a command in ``ns`` and wait for it (text output captured, check=True, timeout 30 s)."""
        check = kw.pop("check", True)
        kw.setdefault("timeout", COMMAND_TIMEOUT)
        command = ["ip", "netns", "exec", ns, *args]
        if check:
            return _checked(command, **kw)
        if "stdout" not in kw and "stderr" not in kw:
            kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        done: subprocess.CompletedProcess[str] = subprocess.run(command, check=False, **kw)
        return done

    def popen(self, ns: str, args: Sequence[str], *, log_path: Path, **kw: Any) -> subprocess.Popen[bytes]:
        """Start a process in ``ns`` in its own session, stdout and stderr to ``log_path``.

        It is stopped (SIGTERM, SIGKILL after 3 s) when the pair closes, if not before.
        """
        if ns not in (self.a, self.b):
            raise ValueError(f"{ns!r} is not a namespace of this pair")
        with open(log_path, "ab") as log:
            # `ip netns exec` execs the command itself, so proc.pid is the daemon, not a wrapper.
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, *args],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **kw,
            )
        self._procs.append(proc)
        return proc

    def close(self) -> None:
        """Stop every process, then delete both namespaces. Safe to call twice."""
        for proc in reversed(self._procs):
            stop_process(proc)
        self._procs.clear()
        for ns in self._created:
            self._kill_remaining(ns)
            with contextlib.suppress(subprocess.SubprocessError):
                _ip("netns", "del", ns)
        left = [ns for ns in self._created if ns in netns_list()]
        self._created.clear()
        if left:
            raise LabError(f"network namespaces not deleted: {left}")

    @staticmethod
    def _kill_remaining(ns: str) -> None:
        # Whatever was started in the namespace by other means (a forked pppd, a test's own
        # `ip netns exec`) would keep it busy; nothing in a test namespace deserves a grace period
        # by now, the processes we started got theirs.
        try:
            pids = _checked(["ip", "netns", "pids", ns]).stdout.split()
        except subprocess.SubprocessError:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)


def netns_list() -> list[str]:
    """Names of the network namespaces that exist now."""
    out = _checked(["ip", "netns", "list"]).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


class Capture:
    """tcpdump on one interface of a namespace, writing a pcap; ready on enter, flushed on exit."""

    def __init__(
        self,
        pair: NetnsPair,
        ns: str,
        path: Path,
        *,
        iface: str | None = None,
        capture_filter: str = f"udp port {L2TP_PORT}",
        ready_timeout: float = 5.0,
    ) -> None:
        self.pair = pair
        self.ns = ns
        self.path = path
        self.iface = iface or pair.if_of(ns)
        self.capture_filter = capture_filter
        self.ready_timeout = ready_timeout
        self.log_path = path.with_suffix(".tcpdump.log")
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        args = ["tcpdump", "-i", self.iface, "-U", "--immediate-mode", "-w", str(self.path), "-s", "0"]
        self._proc = self.pair.popen(self.ns, [*args, self.capture_filter], log_path=self.log_path)
        try:
            wait_for_line(self.log_path, "listening on", self.ready_timeout, self._proc)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop tcpdump with SIGINT (it writes out what it buffered) and wait for it."""
        if self._proc is not None:
            stop_process(self._proc, signal.SIGINT, grace=5.0)
            self._proc = None


# --- the judge ----------------------------------------------------------------------------------

#: The names tshark 4.0 prints for l2tp.avp.message_type -> the RFC 2661 short names.
TSHARK_MESSAGE_NAMES = {
    "Start_Control_Request": "SCCRQ",
    "Start_Control_Reply": "SCCRP",
    "Start_Control_Connected": "SCCCN",
    "Stop_Control_Notification": "StopCCN",
    "Hello": "HELLO",
    "Outgoing_Call_Request": "OCRQ",
    "Outgoing_Call_Reply": "OCRP",
    "Outgoing_Call_Connected": "OCCN",
    "Incoming_Call_Request": "ICRQ",
    "Incoming_Call_Reply": "ICRP",
    "Incoming_Call_Connected": "ICCN",
    "Call_Disconnect_Notification": "CDN",
    "WAN_Error_Notify": "WEN",
    "Set_Link_Info": "SLI",
}
_MESSAGE_TYPE_SHOWNAME = re.compile(r"^Message Type: (?P<name>.*) \((?P<value>\d+)\)$")


@dataclass
class FrameInfo:
    """One L2TP frame as tshark decoded it."""

    number: int
    #: Seconds since the first frame of the capture.
    time: float
    #: "ip:port" ("[ip6]:port" for IPv6).
    src: str
    dst: str
    #: SCCRQ ... SLI, "ZLB", "data", tshark's own name when it is none of those, or "malformed"
    #: ("undecoded") for a datagram on the L2TP port that tshark could not (did not) decode.
    message: str
    tunnel_id: int
    session_id: int
    ns: int | None
    nr: int | None
    #: Every l2tp.* field of the frame -> the values tshark shows ("show"), in frame order.
    fields: dict[str, list[str]] = field(default_factory=dict)

    def first(self, name: str) -> str | None:
        """The first value of a field, e.g. ``first("l2tp.avp.assigned_tunnel_id")``."""
        values = self.fields.get(name)
        return values[0] if values else None

    def __str__(self) -> str:
        seq = f" Ns={self.ns} Nr={self.nr}" if self.ns is not None else ""
        return (
            f"#{self.number} {self.time:8.3f} {self.src} -> {self.dst} {self.message}"
            f" tunnel={self.tunnel_id} session={self.session_id}{seq}"
        )


@dataclass
class Verdict:
    """What tshark says about a capture."""

    pcap: Path
    frames_detail: list[FrameInfo]
    #: Frame numbers tshark calls malformed (any frame, L2TP or not).
    malformed: list[int]
    #: (frame, severity name, message) of every expert item of severity Warning or Error.
    expert: list[tuple[int, str, str]]

    @property
    def frames(self) -> int:
        """Number of L2TP frames (datagrams on the L2TP port, decodable or not)."""
        return len(self.frames_detail)

    @property
    def messages(self) -> list[str]:
        """The message of each L2TP frame in capture order: "SCCRQ", ..., "ZLB", "data"."""
        return [frame.message for frame in self.frames_detail]

    def messages_from(self, src: str) -> list[str]:
        """The messages sent by ``src`` (an address, or "address:port")."""
        return [f.message for f in self.frames_detail if f.src == src or f.src.rpartition(":")[0] == src]

    def control(self) -> list[str]:
        """The messages without ZLBs and data: the control exchange."""
        return [message for message in self.messages if message not in ("ZLB", "data")]

    @property
    def problems(self) -> list[str]:
        """Malformed frames and expert items as text; empty when the capture is clean."""
        out = [f"frame {number}: Malformed Packet" for number in self.malformed]
        out += [f"frame {number}: {severity}: {message}" for number, severity, message in self.expert]
        return out

    def table(self) -> str:
        """One line per L2TP frame, for assertion messages."""
        return "\n".join(str(frame) for frame in self.frames_detail) or "(no L2TP frames)"


def _endpoint(packet: ET.Element, ip_proto: str, which: str) -> str:
    address = _first_show(packet, f"{ip_proto}.{which}")
    port = _first_show(packet, f"udp.{which}port")
    if address is None or port is None:
        return "?"
    return f"[{address}]:{port}" if ip_proto == "ipv6" else f"{address}:{port}"


def _first_show(element: ET.Element, name: str) -> str | None:
    found = element.find(f".//field[@name='{name}']")
    return found.get("show") if found is not None else None


def _message_name(l2tp: ET.Element, fields: dict[str, list[str]]) -> str:
    if fields.get("l2tp.type", ["1"])[0] == "0":
        return "data"
    if "l2tp.zero_length_body_message" in fields:
        return "ZLB"
    element = l2tp.find(".//field[@name='l2tp.avp.message_type']")
    if element is None:
        return "control?"
    match = _MESSAGE_TYPE_SHOWNAME.match(element.get("showname", ""))
    if match is None:
        return f"type-{element.get('show')}"
    name = match["name"]
    return TSHARK_MESSAGE_NAMES.get(name, f"{name}({match['value']})")


def _int_or_none(values: list[str] | None) -> int | None:
    return int(values[0], 0) if values else None


def _parse_packet(packet: ET.Element) -> FrameInfo | None:
    protos = {p.get("name") for p in packet.iter("proto")}
    l2tp = next((p for p in packet.iter("proto") if p.get("name") == "l2tp"), None)
    fields: dict[str, list[str]] = {}
    if l2tp is not None:
        for element in l2tp.iter("field"):
            name = element.get("name", "")
            if name.startswith("l2tp."):
                fields.setdefault(name, []).append(element.get("show", ""))
        message = _message_name(l2tp, fields)
    elif str(L2TP_PORT) in (_first_show(packet, "udp.srcport"), _first_show(packet, "udp.dstport")):
        # tshark adds no L2TP tree at all for some broken datagrams (an AVP running past the end):
        # they still belong in the sequence, or a test could not see where they came.
        message = "malformed" if "_ws.malformed" in protos else "undecoded"
    else:
        return None
    ip_proto = "ipv6" if "ipv6" in protos else "ip"
    return FrameInfo(
        number=int(_first_show(packet, "frame.number") or 0),
        time=float(_first_show(packet, "frame.time_relative") or 0.0),
        src=_endpoint(packet, ip_proto, "src"),
        dst=_endpoint(packet, ip_proto, "dst"),
        message=message,
        tunnel_id=_int_or_none(fields.get("l2tp.tunnel")) or 0,
        session_id=_int_or_none(fields.get("l2tp.session")) or 0,
        ns=_int_or_none(fields.get("l2tp.Ns")),
        nr=_int_or_none(fields.get("l2tp.Nr")),
        fields=fields,
    )


def _expert_items(packet: ET.Element, number: int) -> Iterator[tuple[int, str, str]]:
    for item in packet.iter("field"):
        if item.get("name") != "_ws.expert":
            continue
        severity_text = _first_show(item, "_ws.expert.severity")
        message = _first_show(item, "_ws.expert.message") or item.get("showname") or ""
        severity = int(severity_text, 0) if severity_text else 0
        if severity >= PI_WARN:
            yield number, EXPERT_SEVERITIES.get(severity, hex(severity)), message


def tshark_fields(tshark: str, pcap: Path, *extra: str, timeout: float = 30.0) -> list[list[str]]:
    """``tshark -T fields`` over a capture (``extra``: -Y filter, -e fields): one list per frame."""
    with tempfile.TemporaryDirectory(prefix="l2f-wireshark-") as config_dir:
        # An empty personal configuration: no preference of whoever runs the tests changes the tree.
        done = subprocess.run(
            [tshark, "-n", "-r", str(pcap), *extra, "-T", "fields", "-E", "separator=|"],
            env={**os.environ, "WIRESHARK_CONFIG_DIR": config_dir},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    return [line.split("|") for line in done.stdout.splitlines()]


def judge(pcap: Path, tshark: str, *, check_checksum: bool = False, timeout: float = 60.0) -> Verdict:
    """Decode ``pcap`` with tshark and collect what it says about every L2TP frame.

    ``check_checksum`` has tshark verify UDP checksums (a bad one is an expert Error); the
    captures of a NetnsPair carry real checksums because it turns the offload off.
    """
    with tempfile.TemporaryDirectory(prefix="l2f-wireshark-") as config_dir:
        command = [
            tshark,
            "-n",
            "-r",
            str(pcap),
            "-d",
            f"udp.port=={L2TP_PORT},l2tp",
            "-o",
            f"udp.check_checksum:{'TRUE' if check_checksum else 'FALSE'}",
            "-T",
            "pdml",
        ]
        # An empty personal configuration: no preference of whoever runs the tests changes the tree.
        env = {**os.environ, "WIRESHARK_CONFIG_DIR": config_dir}
        done = subprocess.run(command, capture_output=True, timeout=timeout, env=env, check=False)
    if done.returncode != 0:
        stderr = done.stderr.decode(errors="replace")
        raise LabError(f"{' '.join(command)} exited {done.returncode}:\n{stderr}")
    frames: list[FrameInfo] = []
    malformed: list[int] = []
    expert: list[tuple[int, str, str]] = []
    for packet in ET.fromstring(done.stdout).findall("packet"):
        number = int(_first_show(packet, "frame.number") or 0)
        if any(proto.get("name") == "_ws.malformed" for proto in packet.iter("proto")):
            malformed.append(number)
        expert.extend(_expert_items(packet, number))
        info = _parse_packet(packet)
        if info is not None:
            frames.append(info)
    return Verdict(pcap=pcap, frames_detail=frames, malformed=malformed, expert=expert)


# --- xl2tpd -------------------------------------------------------------------------------------

#: xl2tpd 1.3.18 sends a Hello every HELLO_DELAY = 60 s after the tunnel is up (l2tp.h); no key of
#: xl2tpd.conf changes it.
XL2TPD_HELLO_INTERVAL = 60

#: Log lines of xl2tpd 1.3.18 (run with -D, logging to stderr) worth waiting for.
XL2TPD_LISTENING = r"Listening on IP address"
XL2TPD_TUNNEL_UP = r"Connection established to"
XL2TPD_SESSION_UP = r"Call established with"
XL2TPD_CDN_RECEIVED = r"message type 14 \(Call-Disconnect-Notify\)"
#: The session is gone: closed by this side (pppd died) or by the peer's CDN.
XL2TPD_SESSION_CLOSED = r"call_close: Call \d+ to .* disconnected|Connection closed to .*, serial \d+"
XL2TPD_STOPCCN_RECEIVED = r"message type 4 \(Stop-Control-Connection-Notification\)"
#: A control message with an unexpected Ns, acknowledged and dropped (see Xl2tpd on crossing CDNs).
XL2TPD_OUT_OF_ORDER = r"Received out of order control packet"
#: The tunnel is gone: closed by this side, or by the peer's StopCCN.
XL2TPD_TUNNEL_CLOSED = r"Connection \d+ closed to|Connection closed to .*, port \d+"


def _yes(value: bool) -> str:
    return "yes" if value else "no"


class PeerProcess:
    """A peer daemon of the lab: a context manager that stops it on exit, also on failure."""

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class Xl2tpd(PeerProcess):
    """xl2tpd 1.3.18 in a namespace, as LAC (``lac``) or LNS (``lns``), in the foreground (-D).

    Its log (stdout and stderr: with -D it logs there) is ``log_path``. pppd, which xl2tpd starts
    at ICCN, fails here (no /dev/ppp), so every session ends in a CDN soon after it is up.

    Two xl2tpd ends often both send that CDN, crossing. Each then counts the peer's ZLB for the
    call it has closed as a message, so each expects one Ns too many: the next control message
    of the peer (a Hello, a StopCCN) is acknowledged but dropped, "Received out of order control
    packet ... (got N, expected N+1)". Against xl2tpd, a session that ends in one CDN avoids it.
    """

    def __init__(
        self, pair: NetnsPair, ns: str, *, conf: str, secret: str | None, workdir: Path, lac_name: str | None
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.pair = pair
        self.ns = ns
        self.workdir = workdir
        self.lac_name = lac_name
        self.conf_path = workdir / "xl2tpd.conf"
        self.secrets_path = workdir / "l2tp-secrets"
        self.pid_path = workdir / "xl2tpd.pid"
        self.control_path = workdir / "l2tp-control"
        self.log_path = workdir / "xl2tpd.log"
        self.conf_path.write_text(conf)
        # Always our own file: without -s xl2tpd reads /etc/xl2tpd/l2tp-secrets, whatever it holds.
        # "us them secret"; "*" matches any host name.
        self.secrets_path.write_text(f"* * {secret}\n" if secret is not None else "")
        self.secrets_path.chmod(0o600)
        self._result_counter = itertools.count()
        command = [
            "xl2tpd",
            "-D",
            "-c",
            str(self.conf_path),
            "-s",
            str(self.secrets_path),
            "-p",
            str(self.pid_path),
            "-C",
            str(self.control_path),
        ]
        self.proc = pair.popen(ns, command, log_path=self.log_path)
        self.wait_log(XL2TPD_LISTENING, 5.0)

    @staticmethod
    def _common(*, challenge: bool, hidden: bool, hello: int | None, workdir: Path) -> list[str]:
        if hello not in (None, XL2TPD_HELLO_INTERVAL):
            raise ValueError(
                f"xl2tpd has no Hello setting: it sends one every {XL2TPD_HELLO_INTERVAL} s (HELLO_DELAY)"
            )
        workdir.mkdir(parents=True, exist_ok=True)
        options = workdir / "options.pppd"
        # pppd fails before it reads much (no /dev/ppp); "noauth" keeps it from wanting secrets if
        # a kernel with PPP ever runs this.
        options.write_text("noauth\n")
        return [
            f"challenge = {_yes(challenge)}",
            f"hidden bit = {_yes(hidden)}",
            "ppp debug = yes",
            f"pppoptfile = {options}",
        ]

    @staticmethod
    def _global(listen_addr: str | None, port: int) -> list[str]:
        # No "auth file" here: it would override -s, which is read first.
        lines = ["[global]", f"port = {port}"]
        # The debug lines name every message received ("message type 14 (Call-Disconnect-Notify)"),
        # which is what wait_log waits for; "debug packet" (hex dumps) would only add noise.
        lines += [f"debug {what} = yes" for what in ("avp", "network", "state", "tunnel")]
        if listen_addr is not None:
            lines.append(f"listen-addr = {listen_addr}")
        return lines

    @classmethod
    def lns(
        cls,
        pair: NetnsPair,
        ns: str,
        *,
        listen_addr: str,
        secret: str | None = None,
        challenge: bool = False,
        hidden: bool = False,
        hello: int | None = None,
        workdir: Path,
        hostname: str = "xl2tpd-lns",
        port: int = L2TP_PORT,
    ) -> Self:
        """xl2tpd as LNS listening on ``listen_addr``; ``challenge`` makes it authenticate the tunnel."""
        lines = [
            *cls._global(listen_addr, port),
            "",
            "[lns default]",
            # Addresses for PPP, which never comes up; xl2tpd wants them all the same.
            "ip range = 198.51.100.10-198.51.100.20",
            "local ip = 198.51.100.1",
            "require authentication = no",
            "require chap = no",
            "refuse pap = yes",
            f"hostname = {hostname}",
            *cls._common(challenge=challenge, hidden=hidden, hello=hello, workdir=workdir),
        ]
        return cls(pair, ns, conf="\n".join(lines) + "\n", secret=secret, workdir=workdir, lac_name=None)

    @classmethod
    def lac(
        cls,
        pair: NetnsPair,
        ns: str,
        *,
        lns_addr: str,
        secret: str | None = None,
        challenge: bool = False,
        hidden: bool = False,
        hello: int | None = None,
        autodial: bool = True,
        redial: bool = False,
        workdir: Path,
        name: str = "l2f",
        hostname: str = "xl2tpd-lac",
        listen_addr: str | None = None,
        port: int = L2TP_PORT,
    ) -> Self:
        """xl2tpd as LAC with one ``[lac NAME]`` towards ``lns_addr``; it dials at start if ``autodial``."""
        lines = [
            *cls._global(listen_addr or pair.addr_of(ns), port),
            "",
            f"[lac {name}]",
            f"lns = {lns_addr}",
            f"autodial = {_yes(autodial)}",
            f"redial = {_yes(redial)}",
            "require authentication = no",
            f"hostname = {hostname}",
            *cls._common(challenge=challenge, hidden=hidden, hello=hello, workdir=workdir),
        ]
        return cls(pair, ns, conf="\n".join(lines) + "\n", secret=secret, workdir=workdir, lac_name=name)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_log(self, pattern: str, timeout: float) -> str:
        """Wait until a log line matches ``pattern`` (a regular expression); return the line."""
        return wait_for_line(self.log_path, pattern, timeout, self.proc)

    def control(self, command: str, timeout: float = 5.0) -> str:
        """Send one command through the control FIFO and return xl2tpd's answer ("00 OK", ...)."""
        # "@RESULT cmd": xl2tpd writes its answer to RESULT and unlinks it; xl2tpd-control makes
        # RESULT a FIFO and so do we, so the answer also tells when xl2tpd has acted.
        result = self.workdir / f"control-result-{next(self._result_counter)}"
        os.mkfifo(result, 0o600)
        # Non-blocking open of the read end succeeds before xl2tpd opens the write end.
        reader = os.open(result, os.O_RDONLY | os.O_NONBLOCK)
        try:
            try:
                # O_NONBLOCK: with no reader (xl2tpd gone) this fails at once instead of hanging.
                writer = os.open(self.control_path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as error:
                raise LabError(f"cannot open {self.control_path}: {error}\n{self.log()[-2000:]}") from error
            with os.fdopen(writer, "w") as fifo:
                fifo.write(f"@{result} {command}\n")
            return self._read_answer(reader, command, timeout)
        finally:
            os.close(reader)
            result.unlink(missing_ok=True)

    def _read_answer(self, reader: int, command: str, timeout: float) -> str:
        answer = b""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            # Linux reports no hang-up on a FIFO no writer has opened yet, so this waits for xl2tpd.
            ready, _, _ = select.select([reader], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(reader, 4096)
            if not chunk:
                return answer.decode(errors="replace").strip()
            answer += chunk
        raise LabError(f"xl2tpd did not answer {command!r} within {timeout} s\n{self.log()[-2000:]}")

    def dial(self) -> str:
        """LAC: set up the tunnel and the session of ``[lac NAME]`` ("c NAME")."""
        return self.control(f"c {self._name()}")

    def disconnect(self) -> str:
        """LAC: tear down the tunnel of ``[lac NAME]`` with a StopCCN ("d NAME")."""
        return self.control(f"d {self._name()}")

    def _name(self) -> str:
        if self.lac_name is None:
            raise LabError("only an xl2tpd LAC has a [lac NAME] to dial")
        return self.lac_name

    def stop(self, *, graceful: bool = False) -> None:
        """Stop xl2tpd. SIGTERM closes silently; ``graceful`` (SIGINT) sends a StopCCN per tunnel first."""
        stop_process(self.proc, signal.SIGINT if graceful else signal.SIGTERM)
