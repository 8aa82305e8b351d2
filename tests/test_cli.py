"""The command line: `l2tpfast --version`, `python -m l2tpfast`, `decode`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import l2tpfast
from l2tpfast.wire.constants import AvpType, MessageType
from l2tpfast.wire.message import build_message


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


def test_python_m_version_names_compiled_modules() -> None:
    out = _run(sys.executable, "-m", "l2tpfast", "--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"l2tpfast {l2tpfast.__version__}\n")
    assert "compiled: l2tpfast._parse (" in out.stdout
    assert ".so)" in out.stdout


def test_console_script_version() -> None:
    script = Path(sys.executable).with_name("l2tpfast")
    exe = str(script) if script.exists() else shutil.which("l2tpfast")
    if exe is None:
        pytest.fail("the l2tpfast console script is not installed beside this Python; `pip install -e .`")
    out = _run(exe, "--version")
    assert out.returncode == 0, out.stderr
    assert "l2tpfast._parse" in out.stdout


def test_decode_prints_message_and_avps() -> None:
    msg = build_message(MessageType.HELLO, [], tunnel_id=7)
    out = _run(sys.executable, "-m", "l2tpfast", "decode", msg.encode().hex())
    assert out.returncode == 0, out.stderr
    assert "HELLO tunnel=7 session=0" in out.stdout
    bad = _run(sys.executable, "-m", "l2tpfast", "decode", "c80200ff")
    assert bad.returncode == 1 and "HeaderError" in bad.stdout


def test_decode_reveals_hidden_avps_with_secret() -> None:
    msg = build_message(
        MessageType.ICRP,
        [(AvpType.ASSIGNED_SESSION_ID, 4242)],
        tunnel_id=1,
        secret=b"k",
        hide={AvpType.ASSIGNED_SESSION_ID},
    )
    out = _run(sys.executable, "-m", "l2tpfast", "decode", "--secret", "k", msg.encode().hex())
    assert "ASSIGNED_SESSION_ID (0:14) = 4242" in out.stdout


def test_help_for_every_subcommand() -> None:
    import argparse

    from l2tpfast.cli import build_parser

    actions = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    names = sorted(actions[0].choices)
    assert {"run", "check-config", "status", "ctl", "decode"} <= set(names)
    for args in ([], *([name] for name in names)):
        out = _run(sys.executable, "-m", "l2tpfast", *args, "--help")
        assert out.returncode == 0 and "usage:" in out.stdout, args
        assert len(out.stdout.splitlines()) >= 4, out.stdout  # a description and the options


def test_import_without_compiled_modules_says_how_to_build(tmp_path: Path) -> None:
    # A copy of the sources with no compiled module in it, imported from outside the tree.
    src = Path(l2tpfast.__file__).parent
    shutil.copytree(src, tmp_path / "l2tpfast", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-S", "-c", "import l2tpfast"],  # -S: no editable-install finder
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
        check=False,
    )
    assert out.returncode != 0
    assert "MissingExtensionError" in out.stderr
    assert "l2tpfast._parse" in out.stderr and "pip install ." in out.stderr
