"""Reader slots for epoch-based reclamation, shared by the lock-free structures.

The stride FIB and pfil's linked hook list retire memory a reader may still be walking, and
free it only once every reader that could have seen it has left.  Each reader thread owns a
slot in a plain list: it stores the current epoch there while it reads and 0 when it is done;
the writer scans the list.  This module hands out those slots: one per thread, on first use,
given back when the thread ends (through a finalizer that holds the owner only weakly, so a
structure can be freed while threads that once read it live on).

The slot stores themselves stay in the callers' hot paths (``values[i] = epoch``): the list is
exposed as :attr:`ReaderSlots.values` so they need no method call.  The memory-ordering
argument -- why a slot store is visible to the writer before the reader's loads -- is each
caller's (stride: the GIL around the nogil kernel; pfil: the GIL itself).
"""

from __future__ import annotations

import threading
import weakref


class ReaderSlots:
    """Per-thread slots: ``values[slot]`` is the epoch of the thread's read in progress, or 0."""

    def __init__(self) -> None:
        self.values: list[int] = []
        self.local = threading.local()
        self._free: list[int] = []
        self._lock = threading.Lock()

    def slot(self) -> int:
        """This thread's slot (allocated on first use, released when the thread ends)."""
        try:
            return int(self.local.slot)
        except AttributeError:
            pass
        with self._lock:
            if self._free:
                slot = self._free.pop()
            else:
                slot = len(self.values)
                self.values.append(0)
        self.local.slot = slot
        weakref.finalize(threading.current_thread(), _release, weakref.ref(self), slot)
        return slot

    @property
    def free(self) -> list[int]:
        """Slots given back by ended threads, ready for reuse (for tests and statistics)."""
        return self._free

    def active(self) -> list[int]:
        """The epochs of the reads in progress."""
        return [v for v in self.values if v]


def _release(ref: weakref.ref[ReaderSlots], slot: int) -> None:
    slots = ref()
    if slots is not None:
        with slots._lock:
            slots.values[slot] = 0
            slots._free.append(slot)
