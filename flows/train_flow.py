"""Prefect flow ``train``: run the TFX pipeline on a backend and report the model it pushed."""
from __future__ import annotations

import os

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from flows.common import forward_task_logs, report
from tasks import training, work_lock
from tfx_pipeline.settings import DEFAULTS


@task(name="tfx-pipeline")
def pipeline_run(data: list[str], workdir: str, settings: training.TrainSettings, backend: str) -> dict:
    from prefect.runtime import flow_run

    with forward_task_logs():
        return training.train(data, workdir, settings, backend, requested_by=f"prefect flow run {flow_run.id}")


@task(name="vertex-submit")
def vertex_submit(data: list[str], settings: training.TrainSettings, wait: bool) -> dict:
    from tasks import vertex

    with forward_task_logs():
        return vertex.submit(data, vertex.VertexSettings.from_env(), settings, wait=wait)


@flow(name="train")
def train(data: list[str], workdir: str, backend: str = "local", backbone: str = DEFAULTS.backbone,
          strategy: str = DEFAULTS.strategy, image_size: int | None = DEFAULTS.image_size,
          epochs: int = DEFAULTS.epochs, train_steps: int = DEFAULTS.train_steps,
          eval_steps: int = DEFAULTS.eval_steps, min_accuracy: float = DEFAULTS.min_accuracy,
          max_regression: float = DEFAULTS.max_regression, seed: int = DEFAULTS.seed,
          wait: bool = False, fail_if_busy: bool = False) -> dict:
    """Train on the data set folders ``data`` added to the work folder's data root (an empty
    list retrains on the data root as it is: the nightly deployment).

    ``backend``: local, airflow (HOTDOG_AIRFLOW_*) or vertex (HOTDOG_VERTEX_*; the work folder
    is then HOTDOG_VERTEX_ROOT). Returns the outcome: ``pushed_model`` (the new registry
    version) when the Evaluator blessed the model, else ``reason`` (metric, value, threshold);
    for vertex, the submitted ``job`` and its ``console`` link (``wait``: its final ``state``).
    One run at a time per work folder: a second one waits (``fail_if_busy``: WorkFolderBusy).
    """
    settings = training.TrainSettings(backbone=backbone, strategy=strategy, image_size=image_size, epochs=epochs,
                                      train_steps=train_steps, eval_steps=eval_steps, min_accuracy=min_accuracy,
                                      max_regression=max_regression, seed=seed)
    training.check_settings(settings)
    if backend == "vertex":
        result = vertex_submit(data, settings, wait)
        create_markdown_artifact(key="train-outcome", markdown=(
            f"# Vertex AI pipeline job\n\nJob `{result['job']}` ({result['state']}): [console]({result['console']}).\n"
            f"\nSpec `{result['spec']}`, compiled in {result['compile_seconds']} s.\n"))
        return result
    with work_lock.held(workdir, "train", wait=not fail_if_busy):
        report("train: %s on the %s backend (%s, %s, up to %d epochs) in %s",
               ", ".join(os.path.basename(d.rstrip("/")) for d in data) or "the data root as it is", backend,
               settings.backbone, settings.strategy, settings.epochs, workdir)
        result = pipeline_run(data, workdir, settings, backend)
    accuracy = result["metrics"].get("categorical_accuracy", float("nan"))
    if result["pushed_model"]:
        report("train: model %s blessed (accuracy %.3f), pushed to %s",
               os.path.basename(result["pushed_model"].rstrip("/")), accuracy, result["pushed_model"])
    else:
        report("train: model not blessed (accuracy %.3f): %s", accuracy, result["reason"])
    create_markdown_artifact(key="train-outcome", markdown=_outcome_markdown(result))
    return result


def _outcome_markdown(result: dict) -> str:
    status = f"pushed to `{result['pushed_model']}`" if result["pushed_model"] else f"**not blessed**: {result['reason']}"
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in result["metrics"].items())
    lineage = result.get("lineage", {})
    judged = lineage.get("evaluated_on", {})
    return (f"# Training outcome\n\nModel `{result['model_uri']}` {status}.\n\nEvaluation: {metrics}.\n\n"
            f"Judged on {judged.get('examples')} examples, {judged.get('rule')}: "
            f"{', '.join(judged.get('data_sets', []))}.\n\n"
            f"Classes: {', '.join(lineage.get('classes') or [])}.\n\n"
            f"Data sets: {', '.join(lineage.get('data_sets', []))}; parameters {lineage.get('parameters')}; "
            f"code {lineage.get('code_version')}.\n")
