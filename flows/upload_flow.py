"""Prefect flow ``retrain-on-upload``: a TFRecord landed in the bucket; add it, retrain, judge."""
from __future__ import annotations

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from flows.common import forward_task_logs, retry_unless_input_error
from flows.train_flow import train
from flows.verdict_flow import verdict
from tasks import fs, training, uploads, work_lock
from tfx_pipeline.settings import DEFAULTS


@task(name="stage-upload", retries=2, retry_delay_seconds=5, retry_condition_fn=retry_unless_input_error)
def stage(object_uri: str, workdir: str, backend: str, generation: str | None) -> str:
    with forward_task_logs():
        if backend == "vertex":  # Vertex AI trains on the data root under HOTDOG_VERTEX_ROOT
            from tasks import vertex

            data_root = fs.join(vertex.VertexSettings.from_env().root, "data_root")
        else:
            data_root = training.paths(workdir)["data_root"]
        return uploads.stage(object_uri, data_root, generation)


@flow(name="retrain-on-upload")
def retrain_on_upload(object_uri: str, workdir: str, images: str, generation: str | None = None,
                      event_id: str | None = None, backend: str = "local", backbone: str = DEFAULTS.backbone,
                      strategy: str = DEFAULTS.strategy, epochs: int = DEFAULTS.epochs,
                      image_size: int | None = DEFAULTS.image_size, min_accuracy: float = DEFAULTS.min_accuracy,
                      max_regression: float = DEFAULTS.max_regression, bucket: str | None = None,
                      prefix: str = "") -> dict:
    """Copy ``object_uri`` into the data root (continuous training), retrain, score ``images``.
    With ``bucket``, only objects under gs://``bucket``/``prefix`` are accepted."""
    logger = get_run_logger()
    logger.info("upload %s (generation %s, event %s)", object_uri, generation, event_id)
    if bucket:
        uploads.check_source(object_uri, bucket, prefix)
    with work_lock.held(workdir if backend != "vertex" else "", "retrain-on-upload"):
        stage(object_uri, workdir, backend, generation)
        result = train([], workdir, backend, backbone=backbone, strategy=strategy, image_size=image_size,
                       epochs=epochs, min_accuracy=min_accuracy, max_regression=max_regression)
    if backend == "vertex":  # the job trains remotely; its report is in Vertex AI
        return result
    if not result["pushed_model"]:
        create_markdown_artifact(key="retrain-on-upload", markdown=f"Upload `{object_uri}`: no new model "
                                                                   f"({result['reason']}).\n")
        return result
    name = fs.join(workdir, "verdict", result["pushed_model"].rstrip("/").rsplit("/", 1)[-1])
    summary = verdict({"latest": result["pushed_model"]}, images, name)
    result["verdict"] = {c: s["mean"] for c, s in summary["models"][0]["scores"].items()}
    return result
