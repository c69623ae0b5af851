"""One progress line per TFX component of an in-process run (LocalDagRunner), e.g.
``  3/9 SchemaGen            executed    2.1 s``, read from the runner's and launcher's absl
log records as they happen."""
from __future__ import annotations

import contextlib
import logging
import time
from typing import Iterator

from tasks import progress

RUNNING, FINISHED = "Component %s is running.", "Component %s is finished."
CACHED, EXECUTED = "A cached execution %d is used.", "Going to run a new execution %d"
LABELS = {"latest_blessed_model": "Resolver", "anomalies_gate": "AnomaliesGate"}


class _ComponentLines(logging.Handler):
    def __init__(self, total: int):
        super().__init__(logging.INFO)
        self.total, self.index = total, 0
        self.node, self.started, self.how = None, 0.0, "resolved"

    def emit(self, record: logging.LogRecord) -> None:
        if record.msg == RUNNING:
            self.index += 1
            self.node, self.started, self.how = record.args[0], time.monotonic(), "resolved"
        elif record.msg == CACHED:
            self.how = "cached"
        elif record.msg == EXECUTED:
            self.how = "executed"
        elif record.msg == FINISHED and self.node:
            name = LABELS.get(self.node, self.node)
            progress.log.info("  %d/%d %-17s %-9s %6.1f s", self.index, self.total, name, self.how,
                              time.monotonic() - self.started)
            self.node = None


@contextlib.contextmanager
def component_lines(total: int) -> Iterator[None]:
    """Log a line to the progress logger as each of the ``total`` components finishes.

    The absl verbosity is raised to INFO through absl itself: TensorFlow sets it back to the
    saved verbosity after silencing it (``autotrackable``), which a plain logger level would lose."""
    from absl import logging as absl_logging

    handler = _ComponentLines(total)
    progress.log.info("  %d TFX components, a line as each one ends:", total)
    previous = absl_logging.get_verbosity()
    logging.getLogger("absl").addHandler(handler)
    absl_logging.set_verbosity(max(previous, absl_logging.INFO))
    try:
        yield
    finally:
        logging.getLogger("absl").removeHandler(handler)
        absl_logging.set_verbosity(previous)
