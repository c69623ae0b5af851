"""Where data lives by default; overridable by environment variables and CLI options."""
from __future__ import annotations

import os

from tasks.errors import HotdogInputError

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(PROJECT_ROOT), "shared", "datasets", "hotdog", "intermediary")
DEFAULT_WORKDIR = os.path.join(PROJECT_ROOT, "data")


def default_source() -> str:
    """``$HOTDOG_DATA``, else ../shared/datasets/hotdog/intermediary if present."""
    source = os.environ.get("HOTDOG_DATA")
    if source:
        return source
    if os.path.isdir(SHARED_DATA):
        return SHARED_DATA
    raise HotdogInputError("no image data: set HOTDOG_DATA to a folder-per-category tree "
                           "(local path or gs://bucket/prefix), e.g. HOTDOG_DATA=~/photos make run")


def default_workdir() -> str:
    """``$HOTDOG_WORKDIR``, else the project's data/ folder."""
    return os.environ.get("HOTDOG_WORKDIR", DEFAULT_WORKDIR)
