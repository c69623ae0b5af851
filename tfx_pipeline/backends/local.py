"""Local backend: LocalDagRunner with SQLite ML Metadata under the pipeline root."""
from __future__ import annotations

import os

from tfx import v1 as tfx


def metadata_path(pipeline_root: str) -> str:
    return os.path.join(pipeline_root, "metadata.sqlite")


def run(pipeline_kwargs: dict) -> None:
    """Build the pipeline with ``create_pipeline(**pipeline_kwargs)`` and run it in this process."""
    from tfx_pipeline.pipeline import create_pipeline

    root = pipeline_kwargs["pipeline_root"]
    os.makedirs(root, exist_ok=True)
    config = tfx.orchestration.metadata.sqlite_metadata_connection_config(metadata_path(root))
    tfx.orchestration.LocalDagRunner().run(create_pipeline(**pipeline_kwargs, metadata_connection_config=config))
