"""Vertex AI backend: the same pipeline compiled by TFX's KubeflowV2DagRunner to a
PipelineSpec (PipelineJob JSON) that Vertex AI Pipelines runs.

The TFX image must contain the ``tfx_pipeline`` package (deployments/vertex/Dockerfile):
the trainer imports its siblings (models, images), which TFX's one-folder user-module wheel
cannot carry, so Transform and Trainer name their functions by import path.
"""
from __future__ import annotations

import json
import os

from tfx.orchestration.kubeflow.v2.kubeflow_v2_dag_runner import KubeflowV2DagRunner, KubeflowV2DagRunnerConfig


def compile_spec(pipeline_kwargs: dict, image: str, output_path: str) -> dict:
    """Write the PipelineJob JSON of ``create_pipeline(**pipeline_kwargs)`` to ``output_path``
    (a local file) and return it; every component runs in ``image``."""
    from tfx_pipeline.pipeline import create_pipeline

    runner = KubeflowV2DagRunner(
        config=KubeflowV2DagRunnerConfig(default_image=image),
        output_dir=os.path.dirname(os.path.abspath(output_path)), output_filename=os.path.basename(output_path))
    runner.run(create_pipeline(**pipeline_kwargs, code_in_image=True))
    with open(output_path) as handle:
        return json.load(handle)
