"""Build the C baselines (relay.c, tun_loop.c) of the end-to-end benchmarks.

``build_baselines()`` compiles each program with ``gcc -O2`` into ``build/baseline/``
(git-ignored; ``make clean`` removes it) and returns the binary paths by name. A
binary is rebuilt when it is missing or older than its source, ``common.h`` or this
file (which holds the flags).  Run as a script, it builds and prints the paths as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEFAULT_OUT_DIR = ROOT / "build" / "baseline"
PROGRAMS = ("relay", "tun_loop")
CFLAGS = ("-O2", "-Wall", "-Wextra", "-std=gnu11")
COMPILE_TIMEOUT = 120.0


class BaselineBuildError(RuntimeError):
    """gcc is missing or a baseline does not compile."""


def _needs_build(binary: Path, inputs: list[Path]) -> bool:
    if not binary.exists():
        return True
    built = binary.stat().st_mtime
    return any(path.stat().st_mtime > built for path in inputs)


def build_baselines(
    out_dir: Path | None = None, *, extra_cflags: tuple[str, ...] = (), force: bool = False
) -> dict[str, Path]:
    """Compile what is out of date; return ``{"relay": path, "tun_loop": path}``.

    ``extra_cflags`` (``-Werror`` in the tests) forces a rebuild, so the flags asked
    for are the flags used.
    """
    gcc = shutil.which(os.environ.get("CC", "gcc"))
    if gcc is None:
        raise BaselineBuildError(
            "the C baselines need gcc, which is not on PATH: apt-get install gcc (or set CC)"
        )
    out = Path(out_dir) if out_dir is not None else DEFAULT_OUT_DIR
    out.mkdir(parents=True, exist_ok=True)
    binaries: dict[str, Path] = {}
    for name in PROGRAMS:
        source = HERE / f"{name}.c"
        binary = out / name
        binaries[name] = binary
        if not (force or extra_cflags) and not _needs_build(
            binary, [source, HERE / "common.h", Path(__file__)]
        ):
            continue
        # Compile to a temporary name, then rename: a concurrent run never sees half a binary.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", dir=out)
        os.close(fd)
        try:
            done = subprocess.run(
                [gcc, *CFLAGS, *extra_cflags, "-o", tmp_name, str(source)],
                capture_output=True,
                text=True,
                timeout=COMPILE_TIMEOUT,
                check=False,
            )
            if done.returncode != 0:
                raise BaselineBuildError(f"gcc failed on {source}:\n{done.stderr.strip()}")
            os.chmod(tmp_name, 0o755)
            os.replace(tmp_name, binary)
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
    return binaries


def main() -> int:
    try:
        binaries = build_baselines(force="--force" in sys.argv[1:])
    except BaselineBuildError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(json.dumps({name: str(path) for name, path in binaries.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
