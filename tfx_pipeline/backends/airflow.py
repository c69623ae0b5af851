"""Airflow backend: the same pipeline as an Airflow DAG, built by TFX's AirflowDagRunner.

ML Metadata is the SQLite file the local backend uses (under the pipeline root), so a work
folder can be trained on by either backend and read back the same way.
"""
from __future__ import annotations

import datetime
import os

from tfx.orchestration.airflow.airflow_dag_runner import AirflowDagRunner, AirflowPipelineConfig
from tfx.orchestration import metadata

from tfx_pipeline.backends.local import metadata_path


def dag(pipeline_kwargs: dict, schedule: str | None = None, params: dict | None = None):
    """The Airflow DAG (id = pipeline name) running ``create_pipeline(**pipeline_kwargs)``.

    ``schedule`` is a cron string or None (triggered only); ``params`` are shown on the DAG and
    readable over the REST API (the settings it was built with). Each task process that parses
    the DAG file runs its component with Beam's DoFn specs remembered and a short state-sampler
    period (``beam_dofn_specs``, ``beam_state_sampler``).
    """
    from tfx_pipeline import beam_dofn_specs, beam_state_sampler
    from tfx_pipeline.pipeline import create_pipeline

    beam_dofn_specs.install()
    beam_state_sampler.install()
    root = pipeline_kwargs["pipeline_root"]
    os.makedirs(root, exist_ok=True)
    config = metadata.sqlite_metadata_connection_config(metadata_path(root))
    airflow_config = AirflowPipelineConfig(airflow_dag_config={
        "schedule": schedule, "start_date": datetime.datetime(2024, 1, 1), "catchup": False,
        "max_active_runs": 1, "is_paused_upon_creation": False, "params": params or {},
        "tags": ["hotdog-flows", "tfx"]})
    return AirflowDagRunner(airflow_config).run(create_pipeline(**pipeline_kwargs, metadata_connection_config=config))
