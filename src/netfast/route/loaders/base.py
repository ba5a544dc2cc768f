"""The loaders' shared ground: the result and error types, reading a file plain, gzip or bzip2
(streamed, in blocks of whole lines), and the strict ASCII number and IPv4 prefix parsers the
table scan and the bgpdump reader both use.  See :mod:`netfast.route.loaders` for the formats.
"""

from __future__ import annotations

import bz2
import io
import os
import zlib
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Literal

from netfast.route.rib import Rib, format_prefix, prefix_mask

Format = Literal["text", "pfx2as", "bgpdump", "mrt"]
ValueKind = Literal["origin", "nexthop", "aspath"]
FORMATS: tuple[str, ...] = ("text", "pfx2as", "bgpdump", "mrt")
VALUE_KINDS: tuple[str, ...] = ("origin", "nexthop", "aspath")
PathLike = str | os.PathLike[str]

#: How many error messages :class:`LoadStats` keeps when bad input is skipped.
KEEP_ERRORS = 5


class RouteFileError(ValueError):
    """A route file that cannot be read as its format says.

    ``str(err)`` is ``"<file>: line <n>: <problem>"`` or ``"<file>: offset <n>: <problem>"``.
    ``skippable`` is False for errors ``skip_bad`` cannot get past (a corrupt compressed stream,
    a file of no known format): such errors are raised whatever ``skip_bad`` says.
    """

    def __init__(
        self,
        path: str,
        problem: str,
        *,
        line: int | None = None,
        offset: int | None = None,
        skippable: bool = True,
    ) -> None:
        where = f"line {line}: " if line is not None else ""
        where = f"offset {offset}: " if offset is not None else where
        super().__init__(f"{path}: {where}{problem}")
        self.path = path
        self.problem = problem
        self.line = line
        self.offset = offset
        self.skippable = skippable


@dataclass
class LoadStats:
    """What a loader saw.  ``skipped`` counts bad lines/records by reason (only with
    ``skip_bad``); ``ignored`` counts well-formed things that carry no IPv4 route (STATE changes,
    KEEPALIVEs, MRT types other than BGP ...)."""

    path: str
    format: str = ""
    lines: int = 0
    records: int = 0
    routes: int = 0
    announcements: int = 0
    withdrawals: int = 0
    duplicates: int = 0
    ipv6_skipped: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    first_errors: list[str] = field(default_factory=list)
    ignored: Counter[str] = field(default_factory=Counter)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def _bad(self, err: RouteFileError, reason: str, skip_bad: bool) -> None:
        if not skip_bad:
            raise err
        self.skipped[reason] += 1
        if len(self.first_errors) < KEEP_ERRORS:
            self.first_errors.append(str(err))


@dataclass(frozen=True, slots=True)
class LoadResult:
    rib: Rib
    stats: LoadStats


@dataclass(frozen=True, slots=True)
class Update:
    """One prefix event of a BGP stream: kind ``'A'`` (announce) or ``'W'`` (withdraw).

    ``value`` is empty for withdrawals.  ``timestamp`` is in seconds (microseconds included for
    BGP4MP_ET).  ``peer`` is the peer's address as text, ``peer_as`` its AS number.
    """

    kind: Literal["A", "W"]
    timestamp: float
    net: int
    plen: int
    value: str
    peer: str
    peer_as: int

    @property
    def prefix(self) -> str:
        return format_prefix(self.net, self.plen)


# ---------------------------------------------------------------------------------------------
# Reading: plain, gzip or bzip2, streamed

#: The longest line a text route file may hold (bytes, without the newline).
MAX_LINE = 64 * 1024
#: Decompressed bytes scanned per block: with the table being built, the loaders' peak memory.
BLOCK = 1 << 20
#: Compressed bytes fed to the decompressor per call.
_PIECE = 64 * 1024
#: Longest excerpt of an offending line quoted in a message (characters).
SHOW = 80

_GZIP_MAGIC = b"\x1f\x8b"
_BZIP2_MAGIC = b"BZh"


def shown(text: str | bytes) -> str:
    """``text`` quoted for a message, cut to :data:`SHOW` characters with a note of its length."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if len(text) <= SHOW:
        return repr(text)
    return f"{text[:SHOW]!r}... ({len(text):,} characters)"


class _Decompressed(io.RawIOBase):
    """The content of a gzip or bzip2 file, decompressed as it is read.

    gzip members and bzip2 streams may follow each other (as ``cat a.gz b.gz`` makes them);
    zero bytes after a gzip member are padding.  Anything else that cannot be decompressed is a
    :class:`RouteFileError` naming the byte offset *in the compressed file* where decompression
    failed: the offset is found by replaying the failing stream byte by byte, which costs time
    only on that error path.
    """

    def __init__(self, f: BinaryIO, name: str, codec: Literal["gzip", "bzip2"]) -> None:
        super().__init__()
        self._f = f
        self._name = name
        self._codec = codec
        self._d: Any = None  # decompressor of the current member; None between members
        self._member = 0  # file offset where the current member starts
        self._input = b""  # compressed bytes read from the file and not yet fed
        self._at = 0  # file offset of self._input[0]
        self._last = 0  # file offset of the last bytes fed

    def readable(self) -> bool:
        return True

    def _new(self) -> Any:
        return zlib.decompressobj(31) if self._codec == "gzip" else bz2.BZ2Decompressor()

    def _error(self, offset: int, problem: str) -> RouteFileError:
        return RouteFileError(
            self._name, f"{self._codec} data {problem}", offset=offset, skippable=False
        )

    def _feed(self, d: Any, data: bytes, limit: int) -> bytes:
        """Feed ``data`` (possibly empty, to drain) to ``d``: at most ``limit`` bytes out.
        Input ``d`` cannot take yet stays in ``self._input``."""
        if self._codec == "gzip":
            out: bytes = d.decompress(data, limit)
            rest = d.unused_data if d.eof else d.unconsumed_tail
        else:
            out = d.decompress(data, limit)
            rest = d.unused_data if d.eof else b""  # bz2 buffers unconsumed input itself
        self._at += len(data) - len(rest)
        self._input = rest
        return out

    def _pending(self, d: Any) -> bool:
        """Whether ``d`` holds input it has not turned into output yet."""
        return not d.eof and self._codec == "bzip2" and not d.needs_input

    def readinto(self, b: Any) -> int:
        limit = len(b)
        while True:
            if not self._input and (self._d is None or not self._pending(self._d)):
                self._input = self._f.read(_PIECE)
                if not self._input:
                    return self._end(b, limit)
            if self._d is None and not self._start_member():
                continue
            data = self._input
            if data:
                self._last = self._at
            try:
                out = self._feed(self._d, data, limit)
            except (zlib.error, OSError, EOFError, ValueError):
                raise self._locate() from None
            if self._d.eof:
                self._d = None
            if out:
                b[: len(out)] = out
                return len(out)

    def _start_member(self) -> bool:
        """Begin the next member at ``self._input``; False when it held only padding."""
        if self._codec == "gzip":
            stripped = self._input.lstrip(b"\0")
            self._at += len(self._input) - len(stripped)
            self._input = stripped
            if not stripped:
                return False
            magic = _GZIP_MAGIC
        else:
            magic = _BZIP2_MAGIC
        if len(self._input) < len(magic):
            more = self._f.read(_PIECE)
            self._input += more
            if more:
                return False
        if not self._input.startswith(magic):
            raise self._error(self._at, f"is followed by bytes that are not {self._codec}")
        self._d = self._new()
        self._member = self._at
        return True

    def _end(self, b: Any, limit: int) -> int:
        """The file is exhausted: drain the decompressor, or report a cut stream."""
        if self._d is None:
            return 0
        try:
            out = self._feed(self._d, b"", limit)
        except (zlib.error, OSError, EOFError, ValueError):
            raise self._locate() from None
        if out:
            b[: len(out)] = out
            return len(out)
        if self._d.eof:
            self._d = None
            return 0
        raise self._error(self._at, "is cut short (the file ends inside the compressed stream)")

    def _locate(self) -> RouteFileError:
        """The error for a failure in the bytes fed since ``self._last``: replay the member from
        its start, then feed those bytes one at a time until the decompressor fails."""
        start, stop = self._last, self._at + len(self._input)
        if not self._f.seekable():
            return self._error(start, "is corrupt")
        self._f.seek(self._member)
        d = self._new()
        pos = self._member
        try:
            while pos < start:
                chunk = self._f.read(min(_PIECE, start - pos))
                if not chunk:
                    break
                self._drain(d, chunk)
                pos += len(chunk)
            for byte in self._f.read(max(stop - pos, 0)):
                self._drain(d, bytes((byte,)))
                pos += 1
            self._drain(d, b"")
        except (zlib.error, OSError, EOFError, ValueError) as e:
            return self._error(pos, f"is corrupt: {_codec_text(e)}")
        return self._error(start, "is corrupt")

    def _drain(self, d: Any, data: bytes) -> None:
        if self._codec == "gzip":
            d.decompress(data, BLOCK)
            while d.unconsumed_tail and not d.eof:
                d.decompress(d.unconsumed_tail, BLOCK)
        else:
            if d.eof:
                raise OSError("data after the end of the stream")
            d.decompress(data, BLOCK)
            while not d.eof and not d.needs_input:
                d.decompress(b"", BLOCK)


def _codec_text(e: BaseException) -> str:
    """zlib's / libbz2's reason, without the Python wrapping around it."""
    text = str(e).split(": ", 1)[-1] if isinstance(e, zlib.error) else str(e)
    if text == "incorrect data check":
        return "CRC mismatch (incorrect data check)"
    if text == "incorrect length check":
        return "length mismatch (incorrect length check)"
    return text[:1].lower() + text[1:] or "unknown error"


def read_bytes(path: PathLike) -> bytes:
    """The file's whole content, gunzipped / bunzipped when its magic bytes say so (the loaders
    themselves stream; this is for small files and tests)."""
    with _content(path) as stream:
        return stream.read()


@contextmanager
def _content(path: PathLike) -> Iterator[BinaryIO]:
    """The decompressed content of a file as a stream, decompressed as it is read."""
    name = os.fspath(path)
    with open(path, "rb") as raw:
        magic = raw.peek(3)[:3]
        if magic.startswith(_GZIP_MAGIC):
            yield io.BufferedReader(_Decompressed(raw, name, "gzip"), _PIECE)
        elif magic == _BZIP2_MAGIC:
            yield io.BufferedReader(_Decompressed(raw, name, "bzip2"), _PIECE)
        else:
            yield raw


def _blocks(stream: BinaryIO) -> Iterator[bytes]:
    """Blocks of whole lines from ``stream`` (the last may be unterminated), each at most
    ``BLOCK + MAX_LINE`` bytes.  A line longer than :data:`MAX_LINE` comes as a stand-in, its
    first ``MAX_LINE + 1`` bytes (which the scans reject by length); the rest of it is read past
    and dropped, never held."""
    carry = b""
    while True:
        chunk = stream.read(BLOCK)
        if not chunk:
            if carry:
                yield carry
            return
        data = carry + chunk
        cut = data.rfind(b"\n")
        if cut < 0 and len(data) <= MAX_LINE:
            carry = data
            continue
        if cut >= 0:
            yield data[: cut + 1]
            carry = data[cut + 1 :]
        else:
            carry = data
        if len(carry) > MAX_LINE:
            # An overlong line: hand on a stand-in of MAX_LINE + 1 bytes (the scan rejects it
            # by its length) and drop the rest of it as it streams past.
            yield carry[: MAX_LINE + 1] + b"\n"
            carry = b""
            while True:
                chunk = stream.read(BLOCK)
                if not chunk:
                    return
                nl = chunk.find(b"\n")
                if nl >= 0:
                    carry = chunk[nl + 1 :]
                    break


# ---------------------------------------------------------------------------------------------
# Numbers: ASCII digits only (str.isdigit() and int() also take '²' and Arabic-Indic digits)


def _is_ascii_number(text: str | bytes) -> bool:
    if isinstance(text, str):
        return text.isascii() and text.isdigit()
    return text.isdigit()  # bytes.isdigit() is ASCII-only


def _ascii_int(text: str, what: str, limit: int) -> int:
    """``text`` as a decimal integer 0..limit: ASCII digits only, no sign, no spaces."""
    if not _is_ascii_number(text) or len(text) > 20 or int(text) > limit:
        raise ValueError(f"{what} {shown(text)} is not an integer 0..{limit}")
    return int(text)


def _parse_prefix(text: str) -> tuple[int, int]:
    """A strict ``A.B.C.D/len``: ASCII digits, no leading zeros (``010`` reads as octal to some
    tools and as decimal to others), no host bits.  ``ValueError`` words the problem, starting
    with one of the phrases :data:`_PREFIX_REASONS` keys on."""
    addr, sep, length = text.partition("/")
    if not sep:
        raise ValueError(f"{shown(text)} is not a prefix (no '/len')")
    parts = addr.split(".")
    if len(parts) != 4 or not all(_is_ascii_number(p) and len(p) <= 3 for p in parts):
        raise ValueError(f"{shown(addr)} is not a dotted-quad IPv4 address")
    if any(len(p) > 1 and p[0] == "0" for p in parts):
        raise ValueError(
            f"{shown(addr)} has an octet with a leading zero (refused as ambiguous: "
            "octal to some tools, decimal to others)"
        )
    octets = [int(p) for p in parts]
    if max(octets) > 255:
        raise ValueError(f"{shown(addr)} has an octet above 255")
    if not _is_ascii_number(length) or int(length) > 32 or (len(length) > 1 and length[0] == "0"):
        raise ValueError(f"prefix length {shown(length)} is not an integer 0..32")
    plen = int(length)
    net = (octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]
    if net & ~prefix_mask(plen) & 0xFFFFFFFF:
        raise ValueError(f"{shown(text)} has host bits set beyond /{plen}")
    return net, plen


def _is_ipv4_address(text: str) -> bool:
    try:
        _parse_prefix(text + "/32")
    except ValueError:
        return False
    return True


_PREFIX_REASONS = (
    ("no '/len'", "not_a_prefix"),
    ("dotted-quad", "bad_address"),
    ("above 255", "bad_address"),
    ("leading zero", "bad_address"),
    ("prefix length", "bad_length"),
    ("host bits", "host_bits"),
)


def _prefix_reason(msg: str) -> str:
    return next((r for key, r in _PREFIX_REASONS if key in msg), "bad_prefix")


def _too_long(name: str, line: int) -> RouteFileError:
    return RouteFileError(name, f"line longer than {MAX_LINE:,} bytes", line=line)
