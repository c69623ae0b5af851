"""How a model server runs: one object, whose defaults the CLI shows (importing it loads neither
TensorFlow nor FastAPI)."""
from __future__ import annotations

import dataclasses

from tasks.images import DEFAULT_MAX_PIXELS


@dataclasses.dataclass(frozen=True)
class ServerOptions:
    """How one model server runs; the defaults are the CLI's."""

    workdir: str
    host: str = "127.0.0.1"
    port: int = 8501  # TF Serving's REST port
    model_name: str = "default"  # TF Serving's default --model_name
    version: str | None = None
    poll_seconds: float = 1.0
    max_batch_size: int = 32
    batch_window_ms: float = 4.0
    max_bytes: int = 10 * 2**20
    max_pixels: int = DEFAULT_MAX_PIXELS  # the ingestion limit
    report_dir: str | None = None  # None: where `hotdog run` writes its final report


DEFAULTS = ServerOptions(workdir="")
