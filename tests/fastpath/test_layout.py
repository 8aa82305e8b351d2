"""HEADER_DTYPE and the C struct header_row_t of ``src_pyx/l2tp.pxd`` agree byte for byte (STYLE.md 4)."""

from __future__ import annotations

import numpy as np

import l2tpfast._parse
from l2tpfast.wire.dtypes import HEADER_DTYPE


def test_itemsize_matches_sizeof() -> None:
    assert l2tpfast._parse._row_layout()["itemsize"] == HEADER_DTYPE.itemsize == 28


def test_field_offsets_match_the_c_struct() -> None:
    layout = l2tpfast._parse._row_layout()
    fields = HEADER_DTYPE.fields
    assert fields is not None
    dtype_offsets = {name: offset for name, (_, offset, *_) in fields.items()}
    c_offsets = {name: offset for name, offset in layout.items() if name != "itemsize"}
    # Same names, same order, same offsets.
    assert list(c_offsets) == list(HEADER_DTYPE.names or ())
    assert c_offsets == dtype_offsets


def test_fields_are_little_endian_and_naturally_aligned() -> None:
    # The struct is written with host stores; x86-64 and aarch64 are little-endian.
    fields = HEADER_DTYPE.fields
    assert fields is not None
    for name, (dtype, offset, *_) in fields.items():
        assert dtype.byteorder in ("<", "|", "="), name
        assert offset % dtype.itemsize == 0, name
    assert np.little_endian
