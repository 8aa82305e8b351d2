"""FreeRADIUS and l2tpns in a network namespace: the LNS side of the end-to-end PPP tests.

A plain module (tests/ is on sys.path): ``import radiuslab``. Both classes are context managers
that start their daemon at construction, wait until it answers and stop it (and remove what they
wrote) on exit, also when the test body raises. See /work/shared/LAB.md for the lab itself.

What l2tpns 2.4.1 (Debian 12) does, as seen in captures here and read in its manual and sources:

- Readiness. It binds UDP 1701 on ``bind_address`` at once but handles no tunnel until it is the
  master of its cluster: it waits ``cluster_hb_timeout`` tenths of a second for a heartbeat of
  another master, then logs "I am declaring myself the master!". The default, 150, is the ~14 s of
  LAB.md; it refuses less than ``2 * cluster_hb_interval + 21`` ("Heartbeat timeout 10 too low,
  adjusting to 31"), so with the default interval of 5 we set 31: ready ~3.1 s after start.
- Pool. It reads its IP pool from the fixed path /etc/l2tpns/ip_pool (no option changes it). We
  never touch that file: ``ip netns exec NS`` bind-mounts each entry of /etc/netns/NS/ over /etc/
  (ip-netns(8)), so /etc/netns/NS/l2tpns/ip_pool is the pool l2tpns sees in namespace NS. At start
  it adds one route for each pool range into its TUN device ("Route add 198.51.100.0/28").
- TUN. It creates ``tun0`` (the first free tunN), gives it ``bind_address``/32 and MTU 1462, and
  routes the pool ranges into it (``ip route``: "198.51.100.0/28 dev tun0 proto 42"). A packet the
  kernel routes into tun0 goes to the session whose address is its destination, so a ping from the
  LNS namespace to a subscriber address enters that session. A Framed-IP-Address outside the pool
  gets a /32 route of its own when the session comes up (its sources: routeset() per session).
  ``ip_forward`` is not needed for traffic from or to the LNS namespace itself, only to route
  between the veth and tun0; l2tpns does not set it (it stays 0 here).
- LCP. Within ~50 us of the ICCN it sends its first LCP Configure-Request (seen here, id 1):
  Maximum-Receive-Unit 1462 (= the tun0 MTU), Authentication-Protocol, Magic-Number, Multilink MRRU
  1614 (option 17) and Multilink Endpoint Discriminator class 2 (IP address) = ``bind_address``
  (option 19). Authentication-Protocol is the first of ``radius_authtypes``: CHAP with MD5 (0xc223,
  algorithm 5) for "chap" and "chap,pap", PAP (0xc023) for "pap" (log: "LCP: send ConfigReq
  (CHAP) including MP options"). A peer without multilink has to Configure-Reject options 17 and
  19. Without an answer it resends the same request every ~3 s ("No ACK for LCP ConfigReq...
  resending", ``ppp_restart_time``), at most ``ppp_max_configure`` (10) times.
- Echo. Not seen here (no session got past LCP). Its sources send LCP Echo-Request only on an
  authenticated session with no data from the peer for ``echo_timeout`` seconds ("No data in %d
  seconds, sending LCP ECHO", Magic-Number 0 in older versions), and close the session after
  ``idle_echo_timeout`` without any packet ("No response to LCP ECHO requests.").
- IPCP (its sources; not reached here). Its own address in its IPCP Configure-Request is
  ``peer_address`` if set, else the ``bind_address`` (the tun0 address). The subscriber's address,
  Configure-Nak'ed to the peer's 0.0.0.0, is the Framed-IP-Address of the RADIUS Access-Accept if
  there is one, else the next free address of the pool. DNS (options 129, 131) come from
  ``primary_dns``/``secondary_dns``.
- RADIUS. Access-Request from 127.0.0.1 (any local port) to ``primary_radius``:1812 with
  ``radius_secret``, once the peer has answered CHAP or PAP; accounting to port 1813. Our
  FreeRadius accepts 127.0.0.1 with that secret.
- Tunnel. It answers our SCCRQ with tunnel id 2 on the first tunnel, host name = the machine's
  host name, and with a Challenge Response when we sent a Challenge (``l2tp_secret`` set). SIGTERM
  ends it without StopCCN or CDN. Its cluster heartbeats (multicast 239.192.13.13, UDP 32792) go
  out on ``cluster_interface`` every 0.5 s; a capture on UDP 1701 does not see them.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lab

#: The secret of the RADIUS client 127.0.0.1 in FreeRadius, and l2tpns's radius_secret.
RADIUS_SECRET = "testing123"
SYSTEM_RADDB = Path("/etc/freeradius/3.0")
#: FreeRADIUS -X prints this once its sockets are bound.
FREERADIUS_READY = r"Ready to process requests"
#: l2tpns handles tunnels only once it is the cluster master.
L2TPNS_READY = r"I am declaring myself the master!"
#: Heartbeat timeout in tenths of a second: the least l2tpns accepts with cluster_hb_interval 5.
L2TPNS_HB_TIMEOUT = 31
AUTHTYPES = ("pap", "chap", "chap,pap", "pap,chap")

#: (username, password, Framed-IP-Address or None)
User = tuple[str, str, str | None]


@dataclass(frozen=True)
class RadtestResult:
    #: "Access-Accept", "Access-Reject" or "no answer".
    answer: str
    #: What radtest printed: the request and the reply with its attributes.
    output: str


def _quoted(value: str, what: str) -> str:
    if not re.fullmatch(r"[!#-\[\]-~ ]*", value):  # printable ASCII without '"' and '\'
        raise ValueError(f"{what} {value!r}: use printable ASCII without quotes or backslashes")
    return f'"{value}"'


class FreeRadius(lab.PeerProcess):
    """FreeRADIUS 3 in the foreground (-X) in namespace ``ns``, with a private config directory.

    The system configuration (/etc/freeradius/3.0) is copied into a temp dir and the copy is
    changed: its paths point into the temp dir, it keeps running as root (no user/group switch, so
    it can write there), ``clients.conf`` holds 127.0.0.1 (``secret``) and ``extra_client``,
    ``users`` (mods-config/files/authorize) holds exactly ``users``. It listens on every address
    of the namespace, auth on 1812 and accounting on 1813. Ready in ~0.2 s here, with all the
    modules of the system configuration, so none is disabled.

    The temp dir is ``workdir`` if given (``stop`` then removes only the config copy and keeps
    ``log_path`` for the test's failure report), else a new one that ``stop`` removes entirely.
    """

    def __init__(
        self,
        pair: lab.NetnsPair,
        ns: str,
        users: Sequence[User],
        *,
        secret: str = RADIUS_SECRET,
        extra_client: tuple[str, str] | None = None,
        workdir: Path | None = None,
        ready_timeout: float = 10.0,
        replies: dict[str, Sequence[str]] | None = None,
        debug: bool = True,  # -X: every request in the log; False (-f): the benchmark's speed
    ) -> None:
        self.pair = pair
        self.ns = ns
        self.secret = secret
        self._own_workdir = workdir is None
        if workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix="l2f-radius-"))
        else:
            workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.raddb = self.workdir / "raddb"
        self.log_path = self.workdir / "radiusd.log"
        self.users_path = self.raddb / "mods-config" / "files" / "authorize"
        self.proc: subprocess.Popen[bytes] | None = None
        try:
            self._write_config(users, extra_client, replies or {})
            started = time.monotonic()
            mode = ["-X"] if debug else ["-f", "-l", "stdout"]
            self.proc = pair.popen(ns, ["freeradius", *mode, "-d", str(self.raddb)], log_path=self.log_path)
            lab.wait_for_line(self.log_path, FREERADIUS_READY, ready_timeout, self.proc)
            #: From start to "Ready to process requests": ~0.2 s here.
            self.startup_seconds = time.monotonic() - started
        except BaseException:
            self.stop()
            raise

    def _write_config(
        self, users: Sequence[User], extra_client: tuple[str, str] | None, replies: dict[str, Sequence[str]]
    ) -> None:
        shutil.copytree(SYSTEM_RADDB, self.raddb, symlinks=True)
        conf = self.raddb / "radiusd.conf"
        text = conf.read_text()
        for key, value in (("raddbdir", self.raddb), ("logdir", self.workdir), ("run_dir", self.workdir)):
            text, n = re.subn(rf"(?m)^{key}\s*=.*$", f"{key} = {value}", text)
            if n != 1:
                raise lab.LabError(f"{conf}: no single '{key} =' line to redirect")
        # Root can write the temp dir; freerad could not.
        text = re.sub(r"(?m)^(\s*)(user|group)\s*=", r"\1#\2 =", text)
        # An Access-Reject at once: the tests try wrong passwords on purpose.
        text, n = re.subn(r"(?m)^(\s*)reject_delay\s*=.*$", r"\1reject_delay = 0", text)
        if n != 1:
            raise lab.LabError(f"{conf}: no single 'reject_delay =' line")
        conf.write_text(text)
        clients = [("localhost", "127.0.0.1", self.secret)]
        if extra_client is not None:
            clients.append(("extra", *extra_client))
        (self.raddb / "clients.conf").write_text(
            "".join(
                f"client {name} {{\n\tipaddr = {addr}\n\tsecret = {_quoted(secret, 'secret')}\n"
                "\trequire_message_authenticator = no\n\tnas_type = other\n}\n"
                for name, addr, secret in clients
            )
        )
        lines = []
        for username, password, framed_ip in users:
            lines.append(
                f"{_quoted(username, 'username')}\tCleartext-Password := {_quoted(password, 'password')}"
            )
            reply = [f"Framed-IP-Address = {framed_ip}"] if framed_ip is not None else []
            reply += list(replies.get(username, ()))
            if reply:
                lines[-1] += "\n\t" + ",\n\t".join(reply)
        # ``users`` in the copy is a symlink to this file, as in the system config.
        self.users_path.unlink()
        self.users_path.write_text("\n".join(lines) + "\n")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def accounting_records(self) -> list[dict[str, str]]:
        """What the ``detail`` module wrote (radacct/<client>/detail-*): one dict per record,
        attribute name -> value as FreeRADIUS printed it (quotes removed), in arrival order."""
        records: list[dict[str, str]] = []
        for path in sorted((self.workdir / "radacct").glob("*/detail-*")):
            for block in path.read_text(errors="replace").split("\n\n"):
                record: dict[str, str] = {}
                for line in block.splitlines()[1:]:  # the first line is the time it arrived
                    name, sep, value = line.strip().partition(" = ")
                    if sep:
                        record[name] = value.strip('"')
                if record:
                    records.append(record)
        return records

    def radtest(
        self,
        username: str,
        password: str,
        *,
        chap: bool = False,
        ns: str | None = None,
        server: str = "127.0.0.1",
        secret: str | None = None,
    ) -> RadtestResult:
        """One Access-Request with ``radtest`` (PAP, or CHAP if ``chap``) from ``ns`` (default: ours)."""
        args = [
            "radtest",
            "-t",
            "chap" if chap else "pap",
            username,
            password,
            server,
            "0",
            secret or self.secret,
        ]
        # radclient under radtest: 3 tries 5 s apart when nothing answers.
        done = self.pair.run(ns or self.ns, *args, check=False, timeout=30)
        output = done.stdout + done.stderr
        match = re.search(r"Received (Access-Accept|Access-Reject)", output)
        return RadtestResult(match[1] if match else "no answer", output)

    def stop(self) -> None:
        """Stop FreeRADIUS and remove the config copy (and the log too, unless ``workdir`` was given)."""
        if self.proc is not None:
            lab.stop_process(self.proc)
            self.proc = None
        shutil.rmtree(self.workdir if self._own_workdir else self.raddb, ignore_errors=True)


class L2tpns(lab.PeerProcess):
    """l2tpns 2.4.1 as the LNS in namespace ``ns`` of ``pair``, authenticating through RADIUS.

    ``tun`` is its TUN device (tun0 in a fresh namespace), ``log_path`` its log file (``log()``
    adds what it printed before it opened that file). It is ready (cluster master) on return.
    """

    def __init__(
        self,
        pair: lab.NetnsPair,
        ns: str,
        *,
        workdir: Path,
        pool: Sequence[str] = ("198.51.100.0/28",),
        l2tp_secret: str | None = None,
        radius_server: str = "127.0.0.1",
        radius_secret: str = RADIUS_SECRET,
        radius_authtypes: str = "chap,pap",
        peer_address: str | None = None,
        primary_dns: str = "198.51.100.53",
        debug: int = 3,
        extra: Sequence[str] = (),  # more lines of its config, e.g. 'set ppp_restart_time 1'
        ready_timeout: float = 10.0,
    ) -> None:
        if radius_authtypes not in AUTHTYPES:
            raise ValueError(f"radius_authtypes {radius_authtypes!r}: one of {AUTHTYPES}")
        workdir.mkdir(parents=True, exist_ok=True)
        self.pair = pair
        self.ns = ns
        self.workdir = workdir
        self.bind_address = pair.addr_of(ns)
        self.conf_path = workdir / "l2tpns.conf"
        self.log_path = workdir / "l2tpns.log"
        self.stdout_path = workdir / "l2tpns.out"
        self.pid_path = workdir / "l2tpns.pid"
        self.tun = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self._etc_created: list[Path] = []
        settings: list[tuple[str, Any]] = [
            ("debug", debug),
            ("log_file", str(self.log_path)),
            ("pid_file", str(self.pid_path)),
            ("primary_dns", primary_dns),
            ("primary_radius", radius_server),
            ("radius_secret", radius_secret),
            ("radius_authtypes", radius_authtypes),
            ("bind_address", self.bind_address),
            ("cli_bind_address", "127.0.0.1"),
            # It needs an existing interface for its cluster heartbeats, even alone.
            ("cluster_interface", pair.if_of(ns)),
            ("cluster_hb_timeout", L2TPNS_HB_TIMEOUT),
        ]
        if l2tp_secret is not None:
            settings.append(("l2tp_secret", l2tp_secret))
        if peer_address is not None:
            settings.append(("peer_address", peer_address))
        lines = [
            f'set {key} "{value}"' if isinstance(value, str) else f"set {key} {value}"
            for key, value in settings
        ]
        self.conf_path.write_text("\n".join([*lines, *extra]) + "\n")
        try:
            self._write_etc(pool)
            started = time.monotonic()
            self.proc = pair.popen(ns, ["l2tpns", "-c", str(self.conf_path)], log_path=self.stdout_path)
            self.wait_log(L2TPNS_READY, ready_timeout)
            #: From start to cluster master: ~3 s here.
            self.startup_seconds = time.monotonic() - started
            self.tun = self._find_tun()
        except BaseException:
            self.stop()
            raise

    def _write_etc(self, pool: Sequence[str]) -> None:
        """/etc/netns/NS/l2tpns/: what ``ip netns exec NS`` shows l2tpns as /etc/l2tpns."""
        etc = Path("/etc/netns") / self.ns / "l2tpns"
        for directory in (etc.parent.parent, etc.parent, etc):
            if not directory.exists():
                directory.mkdir()
                self._etc_created.append(directory)
        (etc / "ip_pool").write_text("\n".join(pool) + "\n")
        # The users of its CLI (telnet 127.0.0.1 23): none.
        (etc / "users").write_text("")

    def _find_tun(self) -> str:
        match = re.search(r"Set up on interface (\S+)", self.log())
        if match is None:
            # Below debug 3 it does not say: the namespace's only TUN device is its.
            listed = self.pair.run(self.ns, "ip", "-o", "link", "show").stdout
            match = re.search(r"^\d+: (tun\d+):", listed, re.M)
        if match is None:
            raise lab.LabError(f"l2tpns named no TUN device:\n{self.log()[-2000:]}")
        return match[1]

    def log(self) -> str:
        """What it printed before opening its log file, then the log file."""
        return "".join(p.read_text(errors="replace") for p in (self.stdout_path, self.log_path) if p.exists())

    def wait_log(self, pattern: str, timeout: float) -> str:
        """Wait until a line of its log file matches ``pattern``; return the line."""
        if self.proc is None:
            raise lab.LabError("l2tpns is not running")
        try:
            return lab.wait_for_line(self.log_path, pattern, timeout, self.proc)
        except lab.LabError as error:
            error.add_note(self.log()[-3000:])
            raise

    def stop(self) -> None:
        """Stop it (its whole process group) and remove /etc/netns/NS/l2tpns. Safe to call twice.

        SIGTERM ends l2tpns without StopCCN or CDN (l2tpns(8): the sessions live on in the cluster);
        SIGQUIT would close them first.
        """
        if self.proc is not None:
            lab.stop_process(self.proc)
            self.proc = None
        for directory in reversed(self._etc_created):
            if directory.name == "l2tpns":
                shutil.rmtree(directory, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    directory.rmdir()  # only if empty: someone else may use /etc/netns too
        self._etc_created.clear()
