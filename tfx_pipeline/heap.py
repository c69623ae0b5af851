"""Keeping the cyclic garbage collector off the objects a job starts with.

A process that has imported TensorFlow, Beam and Prefect holds millions of objects that live
as long as it does; each full collection walks all of them again, and a job that creates
many objects (one dict per input file) triggers full collections again and again: 15 % of
the ingestion of 18,000 files (``bench/RESULTS.md``).
"""
from __future__ import annotations

import contextlib
import gc


@contextlib.contextmanager
def frozen():
    """Within: the objects alive at entry are left out of collections (``gc.freeze``); on exit
    they are handed back, so anything of theirs that has become garbage is still collected.
    Nested uses hand them back at the outermost exit only."""
    outermost = gc.get_freeze_count() == 0
    gc.freeze()
    try:
        yield
    finally:
        if outermost:
            gc.unfreeze()
