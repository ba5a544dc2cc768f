"""Output files named after ports, kept inside their folder, and signals that end a run cleanly.

A port name comes from a config file, so it is untrusted text; this module is the one place that
turns it into a file name.  The contract:

- :func:`port_file_name` accepts a name only when it is a plain, single path component: not
  empty, not ``.`` or ``..``, no ``/``, ``\\`` or NUL, no control, format or line-separator
  character, and short enough for a file name.  Anything else is refused, never rewritten, so a
  file is always called exactly what the port is called.
- :class:`PortOutputs` plans one file per port in an output folder and refuses, before anything
  is created: names as above; two ports whose files would be one (names equal after Unicode
  normalization and case folding -- one file on a case-insensitive or normalizing file system
  such as macOS's or a FAT stick -- or existing files that are one by links); a target that
  resolves outside the folder (a symbolic link); a target that is a directory or anything else
  but a regular file; an existing file when overwriting was not asked for; a folder that is a
  file.  Writers registered with it are committed together or aborted together (abort deletes
  their temporary files, and the folders the run created if they are still empty).
- :func:`stop_on_signals` turns SIGINT, SIGTERM and SIGHUP into a stop request that the run
  checks between batches, so a signal never interrupts a write or a rename halfway; a second
  signal interrupts at once (``KeyboardInterrupt``).

Every error is an :class:`OutputPathError` whose message names the path and the problem.
"""

from __future__ import annotations

import errno
import os
import signal
import threading
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "CAPTURE_SUFFIX",
    "STOP_SIGNALS",
    "OutputExistsError",
    "OutputPathError",
    "PortNameError",
    "PortOutputs",
    "SignalStop",
    "fold_name",
    "port_file_name",
    "stop_on_signals",
]

CAPTURE_SUFFIX = ".pcap"

#: The signals that ask a run to stop: Ctrl-C, ``kill``/service managers, a closed terminal.
STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n)
)

# The longest file name most file systems take (ext4, XFS, APFS, NTFS: 255 bytes or units).
_NAME_MAX = 255


class OutputPathError(Exception):
    """An output cannot be written where asked; the message names the path and the problem."""


class OutputExistsError(OutputPathError, FileExistsError):
    """An output exists and replacing it was not asked for (a regular file: replaceable)."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path}: exists")
        self.path = path


class PortNameError(OutputPathError):
    """A port name cannot be a file name.

    Attributes
    ----------
    ifindex, name
        The port.
    problem
        What is wrong with the name, e.g. ``contains '/'``.
    """

    def __init__(self, ifindex: int, name: str, problem: str, out_dir: Path) -> None:
        super().__init__(
            f"port {name!r}: {problem}, so it cannot name its capture file in {out_dir} "
            f"(<name>{CAPTURE_SUFFIX} inside the output folder)"
        )
        self.ifindex = ifindex
        self.name = name
        self.problem = problem


def _name_problem(name: str, suffix: str) -> str | None:
    """Why ``name`` is not a plain single path component, or ``None`` when it is one."""
    if not isinstance(name, str):
        return f"not text ({type(name).__name__})"
    if name == "":
        return "empty"
    if name in (".", ".."):
        return f"{name!r} names a folder, not a file"
    for ch in name:
        if ch in "/\\":
            return f"contains {ch!r} (a path separator)"
        cat = unicodedata.category(ch)
        # Cc controls (NUL, newline, ESC), Cf format characters (bidi overrides that make a
        # name display as another), Cs/Co/Cn surrogates, private use and unassigned; Zl/Zp
        # line and paragraph separators.
        if cat[0] == "C" or cat in ("Zl", "Zp"):
            return f"contains the character U+{ord(ch):04X} ({cat})"
    try:
        encoded = os.fsencode(name + suffix)
    except UnicodeError:
        return "cannot be encoded for the file system"
    if len(encoded) > _NAME_MAX:
        return (
            f"too long for a file name ({len(encoded)} bytes with {suffix!r}; at most {_NAME_MAX})"
        )
    return None


def port_file_name(name: str, suffix: str = CAPTURE_SUFFIX) -> str:
    """The file name of port ``name``'s output: ``name + suffix``.

    Raises
    ------
    ValueError
        ``name`` is not a plain single path component (see the module docstring); the message
        says why.
    """
    problem = _name_problem(name, suffix)
    if problem is not None:
        raise ValueError(f"port name {name!r}: {problem}")
    return name + suffix


def fold_name(name: str) -> str:
    """The key two file names share when some file system would take them for one file.

    Canonical caseless matching (The Unicode Standard, chapter 3, D145): NFD, case fold, NFD;
    then NFC for a stable key.  ``Eth0`` and ``eth0``, or ``é`` precomposed and decomposed,
    fold alike.
    """
    return unicodedata.normalize(
        "NFC", unicodedata.normalize("NFD", unicodedata.normalize("NFD", name).casefold())
    )


class _Writer(Protocol):
    def close(self) -> None: ...

    def abort(self) -> None: ...


@dataclass(frozen=True)
class _Target:
    name: str
    path: Path


class PortOutputs:
    """One output file per port in ``out_dir``, checked before anything is written.

    Parameters
    ----------
    out_dir
        The output folder; created by :meth:`create_dir` if missing.
    names
        Port names by ifindex.
    overwrite
        Replace existing regular files; otherwise an existing target is an
        :class:`OutputExistsError`.
    suffix
        The file name suffix.

    Raises
    ------
    PortNameError
        A name is not a plain single path component.
    OutputPathError
        Two ports would write one file; a target is outside the folder, or is not a regular
        file; the folder exists and is not a directory.
    OutputExistsError
        A target exists and ``overwrite`` is false.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike[str],
        names: Mapping[int, str],
        *,
        overwrite: bool = False,
        suffix: str = CAPTURE_SUFFIX,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.overwrite = overwrite
        self.suffix = suffix
        self._targets: dict[int, _Target] = {}
        self._by_fold: dict[str, int] = {}
        self._writers: list[_Writer] = []
        self._created_dirs: list[Path] = []
        self._check_dir()
        for ifindex, name in names.items():
            problem = _name_problem(name, suffix)
            if problem is not None:
                raise PortNameError(ifindex, name, problem, self.out_dir)
            self._add(ifindex, name)
        self._check_aliases()

    # -- planning ------------------------------------------------------------------------------

    def _check_dir(self) -> None:
        out = self.out_dir
        if os.path.lexists(out) and not out.is_dir():
            kind = "a broken symbolic link" if not out.exists() else "not a directory"
            raise OutputPathError(f"{out}: output folder exists and is {kind}")

    def _add(self, ifindex: int, name: str) -> Path:
        key = fold_name(name)
        other = self._by_fold.get(key)
        path = self.out_dir / (name + self.suffix)
        if other is not None:
            first = self._targets[other].name
            same = "the same name" if first == name else "names equal but for case or Unicode form"
            raise OutputPathError(
                f"{path}: ports {first!r} and {name!r} would both write this file ({same}; "
                "one file on case-insensitive file systems); rename one of them"
            )
        self._check_target(path)
        self._by_fold[key] = ifindex
        self._targets[ifindex] = _Target(name, path)
        return path

    def _check_target(self, path: Path) -> None:
        real_dir = os.path.realpath(self.out_dir)
        real = os.path.realpath(path)
        if os.path.dirname(real) != real_dir:
            raise OutputPathError(
                f"{path}: is a symbolic link to {real}, which is not in the output folder "
                f"{self.out_dir}; remove the link or choose another folder"
            )
        if not os.path.lexists(path):
            return
        if os.path.isdir(path):
            raise OutputPathError(f"{path}: is a directory, not a capture; remove or rename it")
        if not os.path.isfile(path):
            kind = "a broken symbolic link" if os.path.islink(path) else "not a regular file"
            raise OutputPathError(f"{path}: is {kind}; remove or rename it")
        if not self.overwrite:
            raise OutputExistsError(path)

    def _check_aliases(self) -> None:
        """Existing targets that are one file (hard or symbolic links) would lose a capture."""
        seen: dict[tuple[int, int], Path] = {}
        for t in self._targets.values():
            try:
                st = os.stat(t.path)
            except OSError:
                continue
            key = (st.st_dev, st.st_ino)
            if key in seen:
                raise OutputPathError(
                    f"{t.path}: is the same file as {seen[key]} (linked); two ports would "
                    "write one file; remove one of the links"
                )
            seen[key] = t.path

    @property
    def paths(self) -> dict[int, Path]:
        """Planned file per ifindex (so far)."""
        return {i: t.path for i, t in self._targets.items()}

    def name_of(self, ifindex: int) -> str:
        return self._targets[ifindex].name

    def path_for(self, ifindex: int) -> Path:
        """The file for ``ifindex``: its planned one, or ``if<n>`` (``if<n>~2`` ... when that
        is another port's) for a port without a name, checked like the planned ones."""
        t = self._targets.get(ifindex)
        if t is not None:
            return t.path
        base = f"if{ifindex}"
        name, k = base, 1
        while fold_name(name) in self._by_fold:
            k += 1
            name = f"{base}~{k}"
        return self._add(ifindex, name)

    # -- the run -------------------------------------------------------------------------------

    def create_dir(self) -> None:
        """Create the output folder (and missing parents); :meth:`abort` removes those it made
        if they are still empty."""
        missing: list[Path] = []
        p = self.out_dir
        while not os.path.lexists(p) and p != p.parent:
            missing.append(p)
            p = p.parent
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            raise OutputPathError(
                f"{self.out_dir}: output folder exists and is not a directory"
            ) from None
        except OSError as exc:
            where = exc.filename or self.out_dir
            why = "a part of it is not a directory" if exc.errno == errno.ENOTDIR else exc.strerror
            raise OutputPathError(f"{where}: cannot create the output folder: {why}") from None
        self._created_dirs = missing  # deepest first

    def track(self, writer: _Writer) -> None:
        """Register a writer to be committed by :meth:`commit` or discarded by :meth:`abort`."""
        self._writers.append(writer)

    def commit(self) -> None:
        """Close every writer (each renames its file into place); if one fails, the rest are
        aborted and the error propagates."""
        pending = list(self._writers)
        self._writers = []
        try:
            while pending:
                pending[0].close()
                pending.pop(0)
        except BaseException:
            for w in pending[1:]:
                w.abort()
            raise

    def abort(self) -> None:
        """Discard every writer's temporary file; remove the folders :meth:`create_dir` made if
        nothing else was put there."""
        writers, self._writers = self._writers, []
        error: BaseException | None = None
        for w in writers:
            try:
                w.abort()
            except BaseException as exc:  # keep discarding the others
                error = error or exc
        for d in self._created_dirs:
            try:
                d.rmdir()
            except OSError:
                break  # not empty (or gone): leave it and its parents
        self._created_dirs = []
        if error is not None:
            raise error


# -- signals ---------------------------------------------------------------------------------------


class SignalStop:
    """What :func:`stop_on_signals` saw: ``signum`` of the first signal, or ``None``."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.signum: int | None = None

    @property
    def signal_name(self) -> str:
        if self.signum is None:
            return ""
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"

    @property
    def exit_status(self) -> int:
        """The shell's status for a run ended by this signal (128 + its number)."""
        return 128 + (self.signum or 0)


@contextmanager
def stop_on_signals(
    stop: threading.Event, signals: Sequence[int] = STOP_SIGNALS
) -> Iterator[SignalStop]:
    """While inside, the first of ``signals`` sets ``stop`` (the run ends at its next check and
    cleans up); a second one raises ``KeyboardInterrupt`` at once.  Previous handlers are
    restored on exit.  Outside the main thread (where Python cannot handle signals) it does
    nothing."""
    seen = SignalStop(stop)
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return

    def handler(signum: int, frame: Any) -> None:
        if seen.signum is not None:
            raise KeyboardInterrupt
        seen.signum = signum
        stop.set()

    previous: dict[int, Any] = {}
    try:
        for s in signals:
            previous[s] = signal.signal(s, handler)
        yield seen
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
