"""The progress logger: one line per step a user should follow (the terminal of a CLI run,
the Prefect run log of a flow). Details go to ordinary module loggers."""
from __future__ import annotations

import logging

log = logging.getLogger("hotdog.progress")
