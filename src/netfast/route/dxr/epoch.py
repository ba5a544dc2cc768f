"""Epoch-based grace periods: :class:`EpochSlots`, one slot per reader thread plus the global
epoch and the published-state word, with which the writer decides when retired memory is
unreachable by every reader.
"""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt

from netfast.route.dxr.intrinsics import full_fence


class _SlotLease:
    """Returns a thread's epoch slot to the free list when the thread's locals are dropped."""

    __slots__ = ("address", "index", "owner")

    def __init__(self, owner: EpochSlots, index: int) -> None:
        self.owner = owner
        self.index = index
        self.address = int(owner.slots.ctypes.data) + 8 * index

    def __del__(self) -> None:
        self.owner._release(self.index)


class EpochSlots:
    """One slot per reader thread; a slot holds 0 (idle) or the epoch its reader entered in.

    ``ctl[0]`` is the global epoch and ``ctl[1]`` a word the owning engine publishes its current
    state's address in; lookup kernels get the address of ``ctl`` and of their thread's slot
    (:meth:`slot_address`) and run the reader protocol themselves (see :mod:`netfast.route.dxr`).
    From Python, :meth:`enter` / :meth:`leave` hold a grace period.  The writer retires memory
    with :meth:`retire_epoch` and asks :meth:`safe_epoch` which retired memory no reader can
    still hold.
    """

    def __init__(self, nslots: int = 128) -> None:
        self.slots: npt.NDArray[np.int64] = np.zeros(nslots, np.int64)
        self.ctl: npt.NDArray[np.int64] = np.zeros(2, np.int64)
        self.ctl[0] = 1
        self.ctl_address = int(self.ctl.ctypes.data)
        self._free = list(range(nslots - 1, -1, -1))
        self._lock = threading.Lock()
        self._local = threading.local()

    @property
    def epoch(self) -> int:
        return int(self.ctl[0])

    def _lease(self) -> _SlotLease:
        lease: _SlotLease | None = getattr(self._local, "lease", None)
        if lease is None:
            with self._lock:
                if not self._free:
                    raise RuntimeError("more concurrent reader threads than epoch slots")
                lease = _SlotLease(self, self._free.pop())
            self._local.lease = lease
        return lease

    def slot_address(self) -> int:
        """The address of this thread's slot (leased on first use, for the thread's life)."""
        return self._lease().address

    def enter(self) -> int:
        index = self._lease().index
        # The slot store happens before the caller loads the table state (program order under
        # the GIL), so a writer that sees this slot idle knows the reader has not started.
        self.slots[index] = self.ctl[0]
        return index

    def leave(self, index: int) -> None:
        self.slots[index] = 0

    def _release(self, index: int) -> None:
        self.slots[index] = 0
        with self._lock:
            self._free.append(index)

    def retire_epoch(self) -> int:
        """Stamp for memory unpublished just now; advances the global epoch."""
        stamp = int(self.ctl[0])
        self.ctl[0] = stamp + 1
        return stamp

    def safe_epoch(self) -> int:
        """Memory retired with a stamp below this value is unreachable by every reader."""
        # Orders the writer's unpublishing stores before its reads of the slots (the other half
        # of the readers' seq_cst slot store; see the package docstring).
        full_fence()
        slots = self.slots
        active = slots[slots != 0]
        return int(active.min()) if len(active) else int(self.ctl[0])
