"""Build the compiled fast path: src_pyx/*.pyx -> l2tpfast._*.

L2TPFAST_DEBUG=1 builds with bounds checks, line tracing and annotate HTML
(STYLE.md section 4); the default is -O3 with the checks off in hot code.
"""

from __future__ import annotations

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("L2TPFAST_DEBUG", "") not in ("", "0")

MODULES = ["_parse", "_dataplane"]

directives = {
    "language_level": "3",
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "nonecheck": False,
    "embedsignature": True,
}
macros: list[tuple[str, str | None]] = []
if DEBUG:
    directives["linetrace"] = True
    macros.append(("CYTHON_TRACE_NOGIL", "1"))
compile_args = ["-O0", "-g"] if DEBUG else ["-O3"]

extensions = [
    Extension(
        f"l2tpfast.{name}",
        [f"src_pyx/{name}.pyx"],
        extra_compile_args=compile_args,
        define_macros=macros,
    )
    for name in MODULES
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["src_pyx"],
        compiler_directives=directives,
        annotate=DEBUG,
    ),
)
