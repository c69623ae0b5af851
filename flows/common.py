"""What every flow shares: run-log forwarding, progress lines and the retry rule."""
from __future__ import annotations

import contextlib
import logging

from prefect import get_run_logger

from tasks import progress
from tasks.errors import HotdogInputError


class _ToRunLogger(logging.Handler):
    def __init__(self, run_logger):
        super().__init__(logging.INFO)
        self.run_logger = run_logger

    def emit(self, record: logging.LogRecord) -> None:
        self.run_logger.log(record.levelno, "%s", record.getMessage())


@contextlib.contextmanager
def forward_task_logs(name: str = "hotdog"):
    """Send records of the stdlib logger ``name`` (progress of Beam jobs) to the Prefect run log."""
    logger = logging.getLogger(name)
    handler = _ToRunLogger(get_run_logger())
    logger.addHandler(handler)
    previous = logger.level, logger.propagate
    logger.setLevel(logging.INFO)
    logger.propagate = False  # the run logger already prints to the console
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.level, logger.propagate = previous


def report(message: str, *args) -> None:
    """One progress line: on the terminal of a CLI run and in the flow run's log."""
    with forward_task_logs():
        progress.log.info(message, *args)


def retry_transient_io(task, task_run, state) -> bool:
    """Prefect retry condition: retry network/storage hiccups, never bad input or bugs."""
    try:
        state.result()
    except HotdogInputError:
        return False
    except (ConnectionError, TimeoutError):
        return True
    except OSError as err:
        return not isinstance(err, (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError))
    except Exception:
        return False
    return False


def retry_unless_input_error(task, task_run, state) -> bool:
    """Prefect retry condition: retry anything but bad input (a bad file stays bad)."""
    try:
        state.result()
    except HotdogInputError:
        return False
    except Exception:  # noqa: BLE001 - anything else may be transient
        pass
    return True
