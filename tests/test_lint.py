"""Lint, format, types and spelling run as tests, so `make test` fails on them (STYLE.md 10)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PY_PATHS = ["l2tpfast", "tests", "bench", "setup.py"]


def _tool(name: str) -> list[str]:
    exe = Path(sys.executable).with_name(name)
    if exe.exists():
        return [str(exe)]
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed; it comes with `pip install -e '.[test]'`")
    return [found]


def _check(args: list[str]) -> None:
    out = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, timeout=300, check=False)
    assert out.returncode == 0, f"{' '.join(args)}:\n{out.stdout[-5000:]}\n{out.stderr[-2000:]}"


def test_ruff_check() -> None:
    _check([*_tool("ruff"), "check", *PY_PATHS])


def test_ruff_format() -> None:
    _check([*_tool("ruff"), "format", "--check", *PY_PATHS])


def test_mypy_strict() -> None:
    _check([*_tool("mypy"), "--strict", "l2tpfast"])


def test_cython_lint() -> None:
    _check([*_tool("cython-lint"), "src_pyx"])


def test_codespell() -> None:
    _check([*_tool("codespell"), "l2tpfast", "src_pyx", "tests", "bench", "ci", "README.md"])
