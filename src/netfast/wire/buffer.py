"""The buffers header views sit on."""

from __future__ import annotations

Buffer = bytes | bytearray | memoryview


def as_bytes_view(buffer: Buffer) -> memoryview:
    """A flat byte-wise ``memoryview`` of ``buffer`` (zero-copy; writable when ``buffer`` is)."""
    view = memoryview(buffer)
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    return view
