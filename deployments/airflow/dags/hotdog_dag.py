"""The hotdog TFX pipeline as an Airflow DAG (id ``hotdog``).

Configured when Airflow parses this file, from the environment that `hotdog airflow start`
sets: HOTDOG_AIRFLOW_WORKDIR (work folder: data_root/, pipeline/, registry/),
HOTDOG_AIRFLOW_SETTINGS (JSON of tasks.training.TrainSettings) and HOTDOG_AIRFLOW_SCHEDULE
(cron, empty = triggered only). The project root must be on PYTHONPATH.
"""
import dataclasses
import json
import os

from tasks import training
from tfx_pipeline.backends import airflow

_settings = training.TrainSettings(**json.loads(os.environ.get("HOTDOG_AIRFLOW_SETTINGS", "{}")))
_workdir = os.environ.get("HOTDOG_AIRFLOW_WORKDIR", os.path.join(os.environ.get("AIRFLOW_HOME", "."), "hotdog"))

DAG = airflow.dag(training.pipeline_kwargs(_workdir, _settings),
                  schedule=os.environ.get("HOTDOG_AIRFLOW_SCHEDULE") or None,
                  params={"workdir": _workdir, **dataclasses.asdict(_settings)})
