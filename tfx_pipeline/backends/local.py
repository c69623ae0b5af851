"""Local backend: LocalDagRunner with SQLite ML Metadata under the pipeline root."""
from __future__ import annotations

import contextlib
import os

from tfx.orchestration import metadata
from tfx.orchestration.local.local_dag_runner import LocalDagRunner

from tfx_pipeline import heap


def metadata_path(pipeline_root: str) -> str:
    return os.path.join(pipeline_root, "metadata.sqlite")


def run(pipeline_kwargs: dict, watch=lambda components: contextlib.nullcontext()) -> None:
    """Build the pipeline with ``create_pipeline(**pipeline_kwargs)`` and run it in this process,
    inside ``watch(number of components)``."""
    from tfx_pipeline import beam_dofn_specs, beam_state_sampler
    from tfx_pipeline.pipeline import create_pipeline

    beam_dofn_specs.install()
    beam_state_sampler.install()
    root = pipeline_kwargs["pipeline_root"]
    os.makedirs(root, exist_ok=True)
    config = metadata.sqlite_metadata_connection_config(metadata_path(root))
    pipeline = create_pipeline(**pipeline_kwargs, metadata_connection_config=config)
    with watch(len(pipeline.components)), heap.frozen():
        LocalDagRunner().run(pipeline)
