"""Helpers for tests that need external tools (a plain module: conftest.py names collide)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Callable

import pytest

IN_CI = bool(os.environ.get("CI"))


def require_tool(name: str, why: str) -> str:
    """Path of an external tool; under CI a missing tool fails the test, elsewhere it skips.

    CI installs every tool (ci/install-system-deps.sh), so there a missing tool is a broken
    set-up, never a reason to skip.
    """
    path = shutil.which(name)
    if path:
        return path
    message = f"{name} is not installed ({why}); `bash ci/install-system-deps.sh` installs it"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message + " -- skipped because CI is unset")
    raise AssertionError("unreachable")


def require(ok: bool, message: str) -> None:
    """A prerequisite other than a tool: under CI its absence fails the test, elsewhere it skips."""
    if ok:
        return
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message + " -- skipped because CI is unset")


def require_root(why: str) -> None:
    require(os.geteuid() == 0, f"needs root ({why})")


def require_ipv6_loopback() -> None:
    """::1 can be bound (the test machines have it; a container without IPv6 may not)."""
    import socket

    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError as exc:
        require(False, f"no IPv6 loopback here: {exc}")


def run_in_new_netns(prefix: str, command: list[str], why: str, timeout: float = 60.0) -> str:
    """Run ``command`` in a namespace made for it (and deleted after); fail unless it exits 0.

    Needs `ip` and root (see require_tool/require_root). Returns the command's stdout.
    """
    import subprocess

    require_tool("ip", why)
    require_root(why)
    ns = f"{prefix}-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        result = subprocess.run(
            ["ip", "netns", "exec", ns, *command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port nothing is bound to on ``host`` right now."""
    from l2tpfast.runtime.udp import UdpTransport

    with UdpTransport(host, 0) as probe:
        return probe.local_address[1]


async def wait_until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll ``cond`` in the running event loop until it holds; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)
