"""`pip wheel .` gives a platform wheel that installs and runs without Cython."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False)
    assert out.returncode == 0, f"{' '.join(args)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def test_wheel_installs_and_runs_without_cython(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheelhouse), str(ROOT)], tmp_path
    )
    (wheel,) = wheelhouse.glob("l2tpfast-*.whl")
    assert "linux_x86_64" in wheel.name or "linux_aarch64" in wheel.name, wheel.name  # platform wheel
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    py = venv / "bin" / "python"
    _run([str(py), "-m", "pip", "install", "-q", str(wheel)], tmp_path)
    cython = subprocess.run([str(py), "-c", "import Cython"], capture_output=True, cwd=tmp_path, check=False)
    assert cython.returncode != 0, "Cython must not be needed at run time"
    out = _run([str(venv / "bin" / "l2tpfast"), "--version"], tmp_path)
    assert "l2tpfast._parse" in out.stdout and str(venv) in out.stdout
    code = (
        "import numpy as np, l2tpfast._parse as p;"
        "from l2tpfast.wire.dtypes import empty_header_array;"
        "buf=np.frombuffer(bytes.fromhex('c802000c000100000000000000'[:24]),dtype=np.uint8);"
        "out=empty_header_array(1);"
        "n=p.parse_batch(buf,np.array([0],np.uint32),np.array([12],np.uint32),out);"
        "print(n, out['status'][0], out['is_control'][0], out['tunnel_id'][0])"
    )
    out = _run([str(py), "-c", code], tmp_path)
    assert out.stdout.split() == ["1", "0", "1", "1"]
