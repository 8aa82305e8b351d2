"""Typing stub of the compiled batch header parser ``src_pyx/_parse.pyx`` (RFC 2661 3.1)."""

from typing import Any, TypeAlias

import numpy.typing as npt
from typing_extensions import Buffer

# numpy declares ndarray.__buffer__ only for Python >= 3.12, hence the explicit ndarray.
BufferLike: TypeAlias = Buffer | npt.NDArray[Any]

#: status, flags, length, tunnel_id, session_id, ns, nr, offset_size, header_length, payload_length
HeaderTuple = tuple[int, int, int, int, int, int, int, int, int, int]

def parse_batch(
    buf: BufferLike,
    offsets: BufferLike,
    lengths: BufferLike,
    out: npt.NDArray[Any],
    count: int = -1,
) -> int:
    """Parse ``buf[offsets[i]:offsets[i] + lengths[i]]`` into ``out[i]`` (HEADER_DTYPE); return the row count.

    ``offsets`` and ``lengths`` are C-contiguous uint32 buffers.
    """

def parse_header(data: BufferLike) -> HeaderTuple:
    """Parse one whole datagram; ``(status, flags, length, tunnel_id, session_id, ns, nr,
    offset_size, header_length, payload_length)``."""

def _row_layout() -> dict[str, int]:
    """``itemsize`` and the offset of every field of the C struct ``header_row_t``."""
