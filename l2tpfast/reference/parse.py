"""Pure-Python twin of ``l2tpfast._parse``: the header rules of RFC 2661 3.1 per datagram.

Every datagram goes through :func:`l2tpfast.wire.header.parse_header`, the normative
statement of the rules; a :class:`~l2tpfast.errors.HeaderError` becomes its
``status``.  Same arguments, same rows, same exceptions as the compiled module, so
the tests run one body against both and the benchmark compares them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import numpy as np
import numpy.typing as npt

from l2tpfast.errors import HeaderError
from l2tpfast.wire.constants import FLAG_T, VER_MASK, ParseStatus
from l2tpfast.wire.dtypes import HEADER_DTYPE
from l2tpfast.wire.header import parse_header as _parse_wire_header

if TYPE_CHECKING:
    from typing import TypeAlias

    from typing_extensions import Buffer

    # numpy declares ndarray.__buffer__ only for Python >= 3.12, hence the explicit ndarray.
    BufferLike: TypeAlias = Buffer | npt.NDArray[Any]

#: What ``parse_header`` returns: status, flags, length, tunnel_id, session_id, ns, nr,
#: offset_size, header_length, payload_length.
HeaderTuple = tuple[int, int, int, int, int, int, int, int, int, int]

_OK = int(ParseStatus.OK)
_TRUNCATED = int(ParseStatus.TRUNCATED)
# payload_offset and payload_length are 32-bit columns.
_MAX_BUFFER_LEN = 0xFFFFFFFF


def _byte_view(name: str, data: BufferLike) -> memoryview:
    """``data`` as a 1-D C-contiguous view of unsigned bytes, as ``const unsigned char[::1]`` takes it."""
    view = memoryview(cast("Buffer", data))  # an ndarray is one; see BufferLike
    if view.ndim != 1 or view.format not in ("B", "@B", "=B", "<B") or not view.c_contiguous:
        raise ValueError(f"{name} must be a 1-D C-contiguous byte buffer, not format {view.format!r}")
    return view


def _u32_values(name: str, data: BufferLike) -> list[int]:
    """The items of a 1-D C-contiguous uint32 buffer, as ``const uint32_t[::1]`` takes it."""
    view = memoryview(cast("Buffer", data))  # an ndarray is one; see BufferLike
    if view.ndim != 1 or view.itemsize != 4 or view.format.lstrip("@=<") not in ("I", "L"):
        raise ValueError(f"{name} must be a 1-D uint32 buffer, not format {view.format!r}")
    if not view.c_contiguous:
        raise ValueError(f"{name} is not C-contiguous")
    values: list[int] = view.tolist()
    return values


def _check_out(out: npt.NDArray[Any]) -> None:
    if not isinstance(out, np.ndarray) or out.dtype != HEADER_DTYPE or out.ndim != 1:
        raise ValueError("out must be a 1-D HEADER_DTYPE array (l2tpfast.wire.dtypes.empty_header_array)")
    if not out.flags.c_contiguous or not out.flags.writeable:
        raise ValueError("out must be C-contiguous and writable")


def _parse(data: memoryview) -> HeaderTuple:
    try:
        header, payload_offset = _parse_wire_header(data)
    except HeaderError as exc:
        return (int(exc.status), 0, 0, 0, 0, 0, 0, 0, 0, 0)
    return (
        _OK,
        header.flags,
        header.length or 0,
        header.tunnel_id,
        header.session_id,
        header.ns or 0,
        header.nr or 0,
        header.offset_size or 0,
        payload_offset,
        len(data) - payload_offset,
    )


def parse_batch(
    buf: BufferLike, offsets: BufferLike, lengths: BufferLike, out: npt.NDArray[Any], count: int = -1
) -> int:
    """Parse datagrams ``buf[offsets[i]:offsets[i] + lengths[i]]`` into ``out[i]``; return the row count.

    See ``l2tpfast._parse.parse_batch``: a datagram whose extent leaves ``buf`` is
    TRUNCATED and not read; rows that are not OK are zero except ``status``;
    ``header_length`` keeps its low 16 bits.
    """
    data = _byte_view("buf", buf)
    offset_values = _u32_values("offsets", offsets)
    length_values = _u32_values("lengths", lengths)
    _check_out(out)
    if count == -1:
        count = len(offset_values)
    if count < 0:
        raise ValueError(f"count must be -1 or >= 0, not {count}")
    if count > len(offset_values) or count > len(length_values) or count > len(out):
        raise ValueError(
            f"count {count} exceeds an array: offsets {len(offset_values)}, "
            f"lengths {len(length_values)}, out {len(out)}"
        )
    buf_len = len(data)
    if buf_len > _MAX_BUFFER_LEN:
        raise ValueError(f"buffer of {buf_len} octets: payload_offset is 32 bits, keep it under 4 GiB")
    for i in range(count):
        start = offset_values[i]
        end = start + length_values[i]
        if end > buf_len:
            out[i] = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, _TRUNCATED, 0, 0, 0)
            continue
        status, flags, length, tunnel_id, session_id, ns, nr, offset_size, header_length, payload_length = (
            _parse(data[start:end])
        )
        if status != _OK:
            out[i] = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, status, 0, 0, 0)
            continue
        out[i] = (
            start + header_length,
            payload_length,
            flags,
            length,
            tunnel_id,
            session_id,
            ns,
            nr,
            offset_size,
            header_length & 0xFFFF,  # a 16-bit column, see l2tpfast._parse
            _OK,
            flags & VER_MASK,
            1 if flags & FLAG_T else 0,
            0,
        )
    return count


def parse_header(data: BufferLike) -> HeaderTuple:
    """Parse one whole datagram (bytes or any byte buffer); see ``l2tpfast._parse.parse_header``."""
    view = _byte_view("data", data)
    if len(view) > _MAX_BUFFER_LEN:
        raise ValueError(f"datagram of {len(view)} octets: payload_length is 32 bits, keep it under 4 GiB")
    return _parse(view)
