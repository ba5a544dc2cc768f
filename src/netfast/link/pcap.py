"""Capture files as links: replay a capture as received frames, tee a link's traffic to a capture.

This module opens files; the formats themselves are in :mod:`netfast.wire.pcap` and
:mod:`netfast.wire.pcapng`.

- :func:`read_capture` / :func:`open_capture` read a classic pcap or pcapng file, transparently
  decompressing gzip (recognised by its magic bytes, whatever the file is called).
- :class:`PcapReplayLink` is a :class:`~netfast.link.base.Link` whose ``recv_batch`` returns the
  capture's frames, in file order, optionally paced by their timestamps.
- :class:`PcapWriterLink` writes every frame sent (and optionally received) to a classic pcap
  file, either in front of another link (a tee, as smoltcp's ``PcapWriter`` device) or alone
  (a sink that accepts every frame).

Writing never damages an existing file: the capture is written to a temporary file in the same
directory (``.<name>.<random>.tmp``) and renamed over the target only by ``close()``, so the
target holds either its old contents or the complete new capture.  ``abort()``, or leaving a
``with`` block by an exception, deletes the temporary file and leaves the target untouched.
"""

from __future__ import annotations

import gzip
import os
import secrets
import time
import weakref
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from netfast.link.base import Frame, Link, frame_too_big
from netfast.wire.capture import Linktype, PcapError, PcapRecord
from netfast.wire.pcap import PcapReader, PcapWriter, open_capture_stream
from netfast.wire.pcapng import PcapNgReader

__all__ = [
    "CaptureFile",
    "PcapReplayLink",
    "PcapWriterLink",
    "open_capture",
    "read_capture",
]

_GZIP_MAGIC = b"\x1f\x8b"


class _GzipStream:
    """A gzip stream whose decompression errors become :class:`PcapError`.

    A gzip file cut short (the common way a compressed capture is damaged) ends the data early in
    lenient mode, so the capture reader reports a truncated record as it would for a plain file.
    """

    def __init__(self, raw: BinaryIO, name: str, lenient: bool) -> None:
        self._gz = gzip.GzipFile(fileobj=raw, mode="rb")
        self._name = name
        self._lenient = lenient
        self._offset = 0  # decompressed bytes returned so far
        self._error: Exception | None = None  # met after some data; raised on the next read

    def read(self, size: int = -1, /) -> bytes:
        # read1 in a loop rather than read(size): GzipFile.read loses the data it decompressed in
        # the same call when it then meets the cut end of the stream.
        if size < 0:
            size = 1 << 62
        parts: list[bytes] = []
        got = 0
        while got < size and self._error is None:
            try:
                chunk = self._gz.read1(size - got)
            except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                self._error = exc
                break
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
        if not parts and self._error is not None:
            if self._lenient and isinstance(self._error, EOFError):
                return b""
            raise PcapError(self._name, self._offset, f"gzip: {self._error}") from self._error
        self._offset += got
        return b"".join(parts)


class CaptureFile:
    """An open capture file: iterate it for :class:`~netfast.wire.capture.PcapRecord` values.

    Made by :func:`open_capture`; use it as a context manager or call :meth:`close`.

    Attributes
    ----------
    path:
        The file.
    reader:
        The format reader (:class:`~netfast.wire.pcap.PcapReader` or
        :class:`~netfast.wire.pcapng.PcapNgReader`), for header fields such as ``linktype``.
    """

    def __init__(self, path: str | os.PathLike[str], *, tolerate_truncation: bool = False) -> None:
        self.path = Path(path)
        name = str(path)
        self._file: BinaryIO = open(self.path, "rb")  # noqa: SIM115 - closed by close()
        try:
            stream: BinaryIO | _GzipStream = self._file
            if self._file.read(2) == _GZIP_MAGIC:
                self._file.seek(0)
                stream = _GzipStream(self._file, name, tolerate_truncation)
            else:
                self._file.seek(0)
            self.reader: PcapReader | PcapNgReader = open_capture_stream(
                stream, name, tolerate_truncation=tolerate_truncation
            )
        except BaseException:
            self._file.close()
            raise

    @property
    def truncation(self) -> PcapError | None:
        """The truncation a lenient read stopped at, if any (see ``tolerate_truncation``)."""
        return self.reader.truncation

    def __iter__(self) -> Iterator[PcapRecord]:
        return self.reader

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CaptureFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CaptureFile({str(self.path)!r}, format={self.reader.format!r})"


def open_capture(path: str | os.PathLike[str], *, tolerate_truncation: bool = False) -> CaptureFile:
    """Open a classic pcap or pcapng file, gzip-compressed or not.

    Parameters
    ----------
    path:
        The capture file.
    tolerate_truncation:
        Stop at the last whole record of a truncated file instead of raising; the error that was
        not raised is kept in ``CaptureFile.truncation``.

    Raises
    ------
    PcapError
        The file is not a capture, or its header is damaged (records are checked as they are
        read).
    OSError
        The file cannot be opened.
    """
    return CaptureFile(path, tolerate_truncation=tolerate_truncation)


def read_capture(
    path: str | os.PathLike[str], *, tolerate_truncation: bool = False
) -> Iterator[PcapRecord]:
    """Yield every record of a capture file, closing the file at the end.

    See :func:`open_capture` for the parameters and errors.
    """
    with open_capture(path, tolerate_truncation=tolerate_truncation) as capture:
        yield from capture


class PcapReplayLink:
    """A link that receives the frames of a capture file, and sends nowhere.

    Frames come out of ``recv_batch`` in file order.  Without pacing (the default) every call
    returns up to ``max_frames`` frames at once, so a capture replays as fast as it is consumed.
    With ``pace=True`` a frame is released only once ``(clock() - start) * speed`` has reached its
    capture time minus the first frame's, where ``start`` is the clock at the first
    ``recv_batch``; ``recv_batch`` never waits, it returns what is due (possibly nothing), and
    :meth:`next_due_ns` says when to call again.

    The capture is streamed, never held in memory.  Records that are not Ethernet frames
    (pcapng files can mix link types) and frames longer than the MTU allows are skipped and
    counted.  Frames sent to the link are dropped and counted.

    Parameters
    ----------
    path:
        A classic pcap or pcapng file, optionally gzip-compressed.
    name:
        The link's name (default ``"replay:<file name>"``).
    mtu:
        The MTU reported, and the size above which a replayed frame is dropped.
    pace:
        Release frames at the pace they were captured.
    speed:
        Pacing speed-up factor (2.0 replays twice as fast).
    clock:
        Monotonic nanosecond clock used for pacing.
    tolerate_truncation:
        Treat a truncated last record as the end of the capture (see :attr:`truncation`).

    Attributes
    ----------
    counters
        ``rx.frames``, ``rx.bytes``; ``drop.tx`` (frames sent to the replay link),
        ``drop.rx_linktype`` (records that are not Ethernet), ``drop.rx_oversize``.

    Raises
    ------
    PcapError
        From the constructor for a file that is not a capture, from ``recv_batch`` for a damaged
        record.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        name: str | None = None,
        mtu: int = 1500,
        pace: bool = False,
        speed: float = 1.0,
        clock: Callable[[], int] = time.monotonic_ns,
        tolerate_truncation: bool = False,
    ) -> None:
        if mtu < 68:
            raise ValueError(f"mtu = {mtu}: below the IPv4 minimum of 68")
        if not speed > 0:
            raise ValueError(f"speed = {speed}: must be positive")
        self._capture = open_capture(path, tolerate_truncation=tolerate_truncation)
        self._records: Iterator[PcapRecord] = iter(self._capture)
        self._name = name if name is not None else f"replay:{Path(path).name}"
        self._mtu = mtu
        self._pace = pace
        self._speed = speed
        self._clock = clock
        self._next: PcapRecord | None = None
        self._finished = False
        self._closed = False
        self._origin: tuple[int, int] | None = None  # (first capture ts, clock at first recv)
        self.counters: Counter[str] = Counter()

    @property
    def name(self) -> str:
        return self._name

    @property
    def mtu(self) -> int:
        return self._mtu

    @property
    def exhausted(self) -> bool:
        """True once every record has been received (or the link is closed)."""
        return self._peek() is None

    @property
    def truncation(self) -> PcapError | None:
        """The truncation a lenient replay stopped at, if any."""
        return self._capture.truncation

    def _peek(self) -> PcapRecord | None:
        if self._next is None and not self._finished and not self._closed:
            self._next = next(self._records, None)
            self._finished = self._next is None
        return self._next

    def _due_ns(self, record: PcapRecord) -> int:
        assert self._origin is not None
        first_ts, start = self._origin
        return start + int((record.timestamp_ns - first_ts) / self._speed)

    def next_due_ns(self) -> int | None:
        """Clock time at which the next frame is released; ``None`` when exhausted.

        Without pacing, or before the first ``recv_batch``, a pending frame is due now (0).
        """
        record = self._peek()
        if record is None:
            return None
        if not self._pace or self._origin is None:
            return 0
        return self._due_ns(record)

    def recv_batch(self, max_frames: int = 64) -> list[Frame]:
        out: list[Frame] = []
        now = self._clock() if self._pace else 0
        counters = self.counters
        while len(out) < max_frames:
            record = self._peek()
            if record is None:
                break
            if self._pace:
                if self._origin is None:
                    self._origin = (record.timestamp_ns, now)
                if now < self._due_ns(record):
                    break
            self._next = None
            if record.linktype != Linktype.ETHERNET:
                counters["drop.rx_linktype"] += 1
            elif frame_too_big(record.data, self._mtu):
                counters["drop.rx_oversize"] += 1
            else:
                out.append(record.data)
                counters["rx.bytes"] += len(record.data)
        counters["rx.frames"] += len(out)
        return out

    def send(self, frames: Iterable[Frame]) -> int:
        self.counters["drop.tx"] += sum(1 for _ in frames)
        return 0

    def close(self) -> None:
        self._closed = True
        self._next = None
        self._capture.close()

    def __enter__(self) -> PcapReplayLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PcapReplayLink({self._name!r}, rx.frames={self.counters['rx.frames']})"


class _AtomicFile:
    """A new file written beside ``path`` and renamed over it only by :meth:`commit`."""

    def __init__(self, path: Path, *, overwrite: bool) -> None:
        if not overwrite and path.exists():
            raise FileExistsError(f"{path}: exists (pass overwrite=True to replace it)")
        self.path = path
        self.overwrite = overwrite
        for _ in range(16):
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
            try:
                # 0o666 lets the umask decide the final permissions, as for any new file.
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue
            break
        else:
            raise FileExistsError(f"{path}: could not create a temporary file beside it")
        self.tmp = tmp
        self.file: BinaryIO = os.fdopen(fd, "wb")
        # Discards the temporary file if the object is dropped without commit or abort.
        self._finalizer = weakref.finalize(self, _discard, self.file, tmp)

    def commit(self) -> None:
        self._finalizer.detach()
        try:
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            if not self.overwrite and self.path.exists():
                raise FileExistsError(f"{self.path}: appeared while the capture was written")
            os.replace(self.tmp, self.path)
        except BaseException:
            _discard(self.file, self.tmp)
            raise

    def abort(self) -> None:
        self._finalizer.detach()
        _discard(self.file, self.tmp)


def _discard(file: BinaryIO, tmp: Path) -> None:
    file.close()
    tmp.unlink(missing_ok=True)


class PcapWriterLink:
    """A link that writes the frames passing through it to a classic pcap file.

    With an ``inner`` link it is a tee: ``send`` records the frames and hands them to ``inner``,
    ``recv_batch`` returns ``inner``'s frames (recording them when ``capture_received``).  Without
    one it is a sink: every frame sent is recorded and counted as sent; nothing is received.

    Frames are recorded as offered to ``send``, before ``inner`` may drop any.  All frames of one
    ``send`` or ``recv_batch`` call share one timestamp, read from ``clock``.

    The file appears at ``path`` only when :meth:`close` succeeds (see the module docstring);
    a path ending in ``.gz`` is written gzip-compressed.

    Parameters
    ----------
    path:
        The capture to write.
    inner:
        The link to wrap, or ``None`` for a sink.
    capture_received:
        Also record received frames (a tee only).
    clock:
        Wall-clock time in integer nanoseconds since the epoch, for the record timestamps.  A
        time a classic pcap cannot hold (see :class:`~netfast.wire.pcap.PcapWriter`) makes
        ``send`` / ``recv_batch`` raise :class:`~netfast.wire.capture.PcapTimestampError` before
        the frames are recorded or passed on; the capture so far stays in the temporary file
        until :meth:`close` or :meth:`abort`.
    nanosecond:
        Write nanosecond timestamps (default: microseconds, readable by every tool).
    snaplen:
        Frames are cut to this many bytes in the capture (not on the link).
    overwrite:
        Replace an existing file on close (default).  When false an existing ``path`` makes the
        constructor, or ``close``, raise ``FileExistsError``.
    close_inner:
        Close ``inner`` when this link is closed.
    name, mtu:
        For a sink (a tee reports ``inner``'s).

    Attributes
    ----------
    counters
        ``capture.tx``, ``capture.rx`` (frames recorded); for a sink also ``tx.frames``,
        ``tx.bytes``; ``drop.closed`` (frames sent after close).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        inner: Link | None = None,
        *,
        capture_received: bool = False,
        clock: Callable[[], int] = time.time_ns,
        nanosecond: bool = False,
        snaplen: int = 262144,
        overwrite: bool = True,
        close_inner: bool = True,
        name: str | None = None,
        mtu: int = 1500,
    ) -> None:
        self.path = Path(path)
        self._inner = inner
        self._capture_received = capture_received
        self._clock = clock
        self._close_inner = close_inner
        self._name = name if name is not None else f"pcap:{self.path.name}"
        self._mtu = mtu
        self._closed = False
        self.counters: Counter[str] = Counter()
        self._file = _AtomicFile(self.path, overwrite=overwrite)
        try:
            self._gzip: gzip.GzipFile | None = None
            stream: BinaryIO | gzip.GzipFile = self._file.file
            if self.path.suffix == ".gz":
                self._gzip = gzip.GzipFile(fileobj=self._file.file, mode="wb", mtime=0)
                stream = self._gzip
            self._writer = PcapWriter(
                stream, snaplen=snaplen, nanosecond=nanosecond, name=str(self.path)
            )
        except BaseException:
            self._file.abort()
            raise

    @property
    def name(self) -> str:
        return self._inner.name if self._inner is not None else self._name

    @property
    def mtu(self) -> int:
        return self._inner.mtu if self._inner is not None else self._mtu

    @property
    def closed(self) -> bool:
        return self._closed

    def _record(self, frames: list[Frame], key: str) -> None:
        now = self._clock()
        write = self._writer.write
        for frame in frames:
            write(frame, now)
        self.counters[key] += len(frames)

    def send(self, frames: Iterable[Frame]) -> int:
        batch = list(frames)
        if self._closed:
            self.counters["drop.closed"] += len(batch)
            return 0
        self._record(batch, "capture.tx")
        if self._inner is not None:
            return self._inner.send(batch)
        self.counters["tx.frames"] += len(batch)
        self.counters["tx.bytes"] += sum(map(len, batch))
        return len(batch)

    def recv_batch(self, max_frames: int = 64) -> list[Frame]:
        if self._closed or self._inner is None:
            return []
        frames = self._inner.recv_batch(max_frames)
        if self._capture_received and frames:
            self._record(frames, "capture.rx")
        return frames

    def close(self) -> None:
        """Finish the capture and move it to ``path``; close ``inner`` (if ``close_inner``)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._gzip is not None:
                self._gzip.close()
            self._file.commit()
        finally:
            if self._inner is not None and self._close_inner:
                self._inner.close()

    def abort(self) -> None:
        """Discard the capture, leaving ``path`` as it was; close ``inner`` (if ``close_inner``)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._file.abort()
        finally:
            if self._inner is not None and self._close_inner:
                self._inner.close()

    def __enter__(self) -> PcapWriterLink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __repr__(self) -> str:
        return f"PcapWriterLink({str(self.path)!r}, inner={self._inner!r})"
