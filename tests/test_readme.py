"""The README's examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_python_examples_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_decode_example_runs() -> None:
    (hex_text,) = re.findall(r"^l2tpfast decode ([0-9a-f]+)", README, re.M)
    out = subprocess.run(
        [sys.executable, "-m", "l2tpfast", "decode", hex_text],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0 and out.stdout.startswith("HELLO"), out.stdout + out.stderr


def test_example_configs_are_valid(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parent.parent / "examples"
    examples = sorted(root.glob("*.toml"))
    assert len(examples) >= 2
    for original in examples:
        # check-config reads the users file too: point the example at examples/users.
        path = tmp_path / original.name
        path.write_text(original.read_text().replace("/etc/l2tpfast/users", str(root / "users")))
        out = subprocess.run(
            [sys.executable, "-m", "l2tpfast", "check-config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, out.stderr


def test_example_users_file_loads() -> None:
    from l2tpfast.aaa.users import UsersFile

    users = UsersFile.load(Path(__file__).resolve().parent.parent / "examples" / "users")
    assert len(users) == 2 and "alice" in users and "bob" in users


def test_check_config_reads_the_users_file(tmp_path: Path) -> None:
    """A missing users file, or a bad line in it, is a config error naming the file (and line)."""
    root = Path(__file__).resolve().parent.parent / "examples"
    config = tmp_path / "lns.toml"
    users = tmp_path / "users"
    config.write_text((root / "lns-ppp.toml").read_text().replace("/etc/l2tpfast/users", str(users)))

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "l2tpfast", "check-config", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    out = check()
    assert out.returncode == 2 and str(users) in out.stderr, out.stderr
    users.write_text('alice "wonder land"\nbob builder not-an-address\n')
    out = check()
    assert out.returncode == 2 and f"{users}:2" in out.stderr, out.stderr
    users.write_text('alice "wonder land"\n')
    assert check().returncode == 0


def test_systemd_unit_verifies_and_uses_our_signals(tmp_path: Path) -> None:
    """examples/l2tpfast.service: systemd-analyze accepts it; reload is SIGHUP, stop is SIGTERM."""
    import os
    import shutil

    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is missing: ci/system-packages.txt installs systemd")
        pytest.skip("systemd-analyze is not installed here (CI installs it)")
    unit = (Path(__file__).resolve().parent.parent / "examples" / "l2tpfast.service").read_text()
    assert "ExecReload=/bin/kill -HUP $MAINPID" in unit and "KillSignal=SIGTERM" in unit
    # Point it at this interpreter, so every command in it exists here.
    wrapper = tmp_path / "l2tpfast"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m l2tpfast "$@"\n')
    wrapper.chmod(0o755)
    path = tmp_path / "l2tpfast.service"
    path.write_text(unit.replace("/usr/local/bin/l2tpfast", str(wrapper)))
    out = subprocess.run(
        [analyze, "verify", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    ours = [line for line in (out.stdout + out.stderr).splitlines() if "l2tpfast.service" in line]
    assert out.returncode == 0 and not ours, out.stdout + out.stderr
