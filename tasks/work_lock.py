"""One run at a time per training work folder, across processes.

``train``, ``run`` and the deployments' flow runs hold ``<workdir>/.lock`` (an ``fcntl``
lock: the kernel releases it when the holder exits, even killed) while they stage data,
train or delete. The lock is re-entrant within a process, so a flow that holds it can call
the ``train`` flow. gs:// work folders (Vertex AI) are not locked here: Vertex runs each
pipeline job on its own and the limit-1 deployments serialize the submissions.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
import time

from tasks import fs, progress
from tasks.errors import WorkFolderBusy

LOCK_FILE = ".lock"
_held: dict[str, int] = {}
_guard = threading.Lock()


def _holder(handle) -> str:
    handle.seek(0)
    try:
        info = json.loads(handle.read() or "{}")
    except ValueError:
        return "another process"
    return f"pid {info.get('pid')} ({info.get('command')}, since {info.get('since')})"


@contextlib.contextmanager
def held(workdir: str, command: str, wait: bool = True):
    """Hold ``workdir``'s lock for the block. Busy: wait for it (saying who holds it), or with
    ``wait=False`` raise WorkFolderBusy naming the holder."""
    if not workdir or fs.is_remote(workdir):
        yield
        return
    key = os.path.realpath(workdir)
    with _guard:
        if _held.get(key):
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _guard:
                _held[key] -= 1
        return
    os.makedirs(key, exist_ok=True)
    with open(os.path.join(key, LOCK_FILE), "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(handle)
            if not wait:
                raise WorkFolderBusy(f"work folder {workdir} is in use by {holder}; run again when it has "
                                     f"finished, or without --fail-if-busy to wait for it") from None
            progress.log.info("waiting for %s to finish with %s", holder, workdir)
            fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "command": command,
                                 "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
        handle.flush()
        with _guard:
            _held[key] = 1
        try:
            yield
        finally:
            with _guard:
                del _held[key]
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)
