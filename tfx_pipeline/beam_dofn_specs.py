"""Beam's DoFn state and timer specs, computed once per DoFn in this process.

Beam 2.74 recomputes a DoFn's specs (``userstate.get_dofn_specs``: ``inspect.signature`` of
every method of the DoFn) each time it asks whether the DoFn is stateful, while it builds,
translates and runs a job: about 6,800 times in one local TFX run of four Beam components,
about 1 s of each component on 2 cores. The specs follow from the DoFn's methods, which do not
change once it is built, so :func:`install` keeps them per DoFn object.
"""
from __future__ import annotations

import threading
import weakref

_lock = threading.Lock()


def install() -> None:
    """Make ``apache_beam.transforms.userstate.get_dofn_specs`` remember its answer per DoFn
    object (each caller gets its own copy of the two sets). Idempotent."""
    from apache_beam.transforms import userstate

    with _lock:
        if getattr(userstate.get_dofn_specs, "remembers", False):
            return
        userstate.get_dofn_specs = _remembering(userstate.get_dofn_specs)


def _remembering(compute):
    known: dict[int, tuple[weakref.ref, tuple]] = {}

    def get_dofn_specs(dofn):
        key = id(dofn)
        entry = known.get(key)
        if entry is None or entry[0]() is not dofn:
            specs = compute(dofn)
            try:
                entry = (weakref.ref(dofn, lambda _, key=key: known.pop(key, None)), specs)
            except TypeError:  # not weakly referenceable: computed every time, as Beam does
                return specs
            known[key] = entry
        state_specs, timer_specs = entry[1]
        return set(state_specs), set(timer_specs)

    get_dofn_specs.remembers = True
    get_dofn_specs.__wrapped__ = compute
    return get_dofn_specs
