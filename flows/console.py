"""What one ``hotdog`` command shows: a few progress lines on the terminal, everything else
(TensorFlow, Beam, absl, pip, Prefect) in a log file in the work folder.

Progress is whatever is logged to the ``hotdog.progress`` logger. Unless ``verbose``, the
process's stdout and stderr file descriptors are pointed at the log file for the
command's duration, so output of C++ libraries and child processes lands there too.
"""
from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
import time
from typing import Iterator

from tasks.progress import log as progress

QUIET = ("httpx", "httpcore")  # one INFO line per HTTP request to the Prefect API


@dataclasses.dataclass
class Session:
    log_path: str
    terminal: object

    def say(self, line: str) -> None:
        print(line, file=self.terminal, flush=True)


def log_path(log_dir: str, command: str) -> str:
    os.makedirs(log_dir, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return os.path.join(log_dir, f"{command}-{stamp}-{os.getpid()}.log")


@contextlib.contextmanager
def session(command: str, log_dir: str, verbose: bool = False) -> Iterator[Session]:
    """Run the block with the log file ``log_dir/<command>-<time>.log``; its path is printed first."""
    path = log_path(log_dir, command)
    log_file = open(path, "a", buffering=1, encoding="utf-8")
    file_handler = logging.FileHandler(path, encoding="utf-8")
    file_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    previous_root_level = root.level
    root.addHandler(file_handler)
    root.setLevel(min(previous_root_level or logging.INFO, logging.INFO))
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = None if verbose else (os.dup(1), os.dup(2))
    terminal = sys.stderr if verbose else os.fdopen(os.dup(saved[1]), "w", buffering=1, encoding="utf-8")
    current = Session(path, terminal)
    current.say(f"hotdog {command}: full log in {path}" + ("" if verbose else " (--verbose shows it here)"))
    quieted = {name: logging.getLogger(name).level for name in QUIET}
    for name in quieted:
        logging.getLogger(name).setLevel(logging.WARNING)
    handler = logging.StreamHandler(terminal)
    handler.setFormatter(logging.Formatter("%(message)s"))
    progress.addHandler(handler)
    progress.setLevel(logging.INFO)
    if saved:
        os.dup2(log_file.fileno(), 1)
        os.dup2(log_file.fileno(), 2)
    try:
        yield current
    except BaseException as err:
        if not _is_input_error(err):
            current.say(f"hotdog {command} failed ({type(err).__name__}); full log: {path}")
        raise
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        if saved:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            terminal.close()
        progress.removeHandler(handler)
        for name, level in quieted.items():
            logging.getLogger(name).setLevel(level)
        root.removeHandler(file_handler)
        root.setLevel(previous_root_level)
        file_handler.close()
        log_file.close()


def _is_input_error(err: BaseException) -> bool:
    from tasks.errors import HotdogInputError, WorkFolderBusy

    return isinstance(err, (HotdogInputError, WorkFolderBusy))
