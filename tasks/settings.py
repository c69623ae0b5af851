"""Where data lives by default; overridable by environment variables and CLI options."""
from __future__ import annotations

import os

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(os.path.dirname(PROJECT_ROOT), "shared", "datasets", "hotdog", "intermediary")
DEFAULT_WORKDIR = os.path.join(PROJECT_ROOT, "data")
FETCHED_DATA = os.path.join(DEFAULT_WORKDIR, "hotdog-images")  # where `hotdog data fetch` puts the public set


def default_source() -> str | None:
    """``$HOTDOG_DATA``, else a complete `hotdog data fetch` download in data/, else
    ../shared/datasets/hotdog/intermediary if present, else None (fetch it)."""
    from tasks import fetch

    source = os.environ.get("HOTDOG_DATA")
    if source:
        return source
    if fetch.is_complete(FETCHED_DATA):
        return FETCHED_DATA
    if os.path.isdir(SHARED_DATA):
        return SHARED_DATA
    return None


def default_workdir() -> str:
    """``$HOTDOG_WORKDIR``, else the project's data/ folder."""
    return os.environ.get("HOTDOG_WORKDIR", DEFAULT_WORKDIR)


def stack_dir(workdir: str) -> str:
    """State folder of the `hotdog serve` stack of ``workdir`` (pids, logs, API URL)."""
    return os.path.join(workdir, "prefect")


def logs_dir(workdir: str) -> str:
    """Command logs: ``workdir``/logs, or data/logs when the work folder is not local."""
    local = workdir if "://" not in workdir or workdir.startswith("file://") else DEFAULT_WORKDIR
    return os.path.join(local.removeprefix("file://"), "logs")
