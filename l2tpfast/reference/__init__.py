"""Pure-Python data path with the compiled fast path's API.

The test oracle and the benchmark baseline (STYLE.md 1), never a fallback:
``l2tpfast.reference.parse`` mirrors ``l2tpfast._parse``.
"""
