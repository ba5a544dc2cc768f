"""The LPM oracle the FIB tests compare against on real tables: pytricia over the same routes.

Tables are read with the project's own loader (tested on its own against each file's header).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from netfast.route.loaders import load_table
from netfast.route.rib import NO_ROUTE, Rib


def read_table(path: Path) -> Rib:
    return load_table(path).rib


def pytricia_of(rib: Rib) -> Any:
    import pytricia

    pyt = pytricia.PyTricia(32)
    for net, plen, rid in rib.items():
        pyt.insert(net, plen, rid)
    return pyt


def pytricia_lookup(pyt: Any, addrs: npt.NDArray[np.uint32]) -> npt.NDArray[np.int32]:
    """Route ids pytricia finds for ``addrs`` (-1 where it finds none)."""
    get = pyt.get
    return np.fromiter((get(a, NO_ROUTE) for a in addrs.tolist()), np.int32, len(addrs))


def sample_addresses(rib: Rib, n: int, seed: int) -> npt.NDArray[np.uint32]:
    """``n`` addresses inside announced prefixes, then ``n`` uniform ones."""
    rng = np.random.default_rng(seed)
    nets, plens, _ = rib.live_arrays()
    pick = rng.integers(0, len(nets), n)
    offset = rng.integers(0, 2**32, n) % (np.int64(1) << (32 - plens[pick].astype(np.int64)))
    inside = nets[pick].astype(np.int64) + offset
    return np.concatenate([inside, rng.integers(0, 2**32, n)]).astype(np.uint32)
