"""One run at a time per work folder, across processes: wait or fail, re-entrant within a
process, released when the holder dies."""
import logging
import os
import signal
import subprocess
import sys
import threading

import pytest

from tasks import progress, settings, work_lock
from tasks.errors import WorkFolderBusy
from tests.unit.test_cli import HOLDER


@pytest.fixture
def holder(tmp_path):
    """A process that holds tmp_path/work's lock until its stdin closes."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "work")], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": settings.PROJECT_ROOT})
    assert process.stdout.readline() == "held\n"
    yield process
    if process.poll() is None:
        process.communicate("", timeout=60)


def test_busy_folder_names_its_holder(holder, tmp_path):
    with pytest.raises(WorkFolderBusy, match=rf"in use by pid {holder.pid} \(holder, since .*--fail-if-busy"):
        with work_lock.held(str(tmp_path / "work"), "second", wait=False):
            pass


def test_a_waiting_run_starts_when_the_holder_ends(holder, tmp_path):
    said, acquired = threading.Event(), threading.Event()
    handler = logging.Handler()
    handler.emit = lambda record: said.set() if "waiting for pid" in record.getMessage() else None
    progress.log.addHandler(handler)
    level = progress.log.level
    progress.log.setLevel(logging.INFO)

    def second():
        with work_lock.held(str(tmp_path / "work"), "second"):
            acquired.set()

    waiter = threading.Thread(target=second)
    try:
        waiter.start()
        assert said.wait(30), "the waiting run did not say whom it waits for"
        assert not acquired.is_set()
        holder.communicate("", timeout=60)
        assert acquired.wait(30)
    finally:
        progress.log.removeHandler(handler)
        progress.log.setLevel(level)
        waiter.join(30)


def test_a_killed_holder_releases_the_folder(holder, tmp_path):
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    with work_lock.held(str(tmp_path / "work"), "next", wait=False):
        pass


TRY = """
import sys
from tasks import work_lock
from tasks.errors import WorkFolderBusy
try:
    with work_lock.held(sys.argv[1], "try", wait=False):
        print("free")
except WorkFolderBusy:
    print("busy")
"""


def other_process_sees(workdir) -> str:
    done = subprocess.run([sys.executable, "-c", TRY, workdir], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": settings.PROJECT_ROOT})
    return done.stdout.strip()


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    workdir = str(tmp_path / "work")
    with work_lock.held(workdir, "run", wait=False):
        with work_lock.held(workdir, "train", wait=False):
            pass
        assert other_process_sees(workdir) == "busy"  # the inner block did not release the outer one
    assert other_process_sees(workdir) == "free"
    assert os.listdir(workdir) == [".lock"]
