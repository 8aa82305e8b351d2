"""The README's examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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


def test_example_configs_are_valid() -> None:
    examples = sorted((Path(__file__).resolve().parent.parent / "examples").glob("*.toml"))
    assert len(examples) >= 2
    for path in examples:
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
