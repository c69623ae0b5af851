"""Train with the TFX pipeline: stage data sets into the data root, run a backend, report.

Work folder layout (local path)::

    <workdir>/data_root/<data set>/...tfrecord   every data set trained on so far (continuous training)
    <workdir>/pipeline/                          TFX pipeline root, metadata.sqlite (ML Metadata)
    <workdir>/registry/<version>/                pushed (blessed) SavedModels, one folder per version
    <workdir>/schema/schema.pbtxt                the data's schema, frozen after the first blessed model
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os

from tasks import class_names, frozen_schema, fs
from tasks.errors import HotdogInputError
from tfx_pipeline.settings import TrainSettings

log = logging.getLogger("hotdog.training")
BACKENDS = ("local", "airflow", "vertex")


def check_settings(settings: TrainSettings) -> None:
    """HotdogInputError naming the first bad option of ``settings``."""
    problems = settings.problems()
    if problems:
        raise HotdogInputError(problems[0])


def paths(workdir: str) -> dict[str, str]:
    return {"data_root": os.path.join(workdir, "data_root"), "pipeline_root": os.path.join(workdir, "pipeline"),
            "registry": os.path.join(workdir, "registry")}


def demo_dir(workdir: str, seed: int = 0) -> str:
    """The training work folder of ``hotdog run`` under its ``workdir`` for its ``seed``-th repeat
    (0-based; the deployments train in ``<workdir>/training``)."""
    return fs.join(workdir, "run", "training" if seed == 0 else f"training-seed{seed + 1}")


def pushed_versions(workdir: str) -> list[str]:
    """The registry's model versions, oldest first."""
    registry = paths(workdir)["registry"]
    if not fs.exists(registry):
        return []
    fsys, path = fs.filesystem(registry)
    names = (entry.rstrip("/").rsplit("/", 1)[-1] for entry in fsys.ls(path, detail=False))
    return sorted((name for name in names if name.isdigit()), key=int)


def check_can_start_over(workdir: str, fresh: bool) -> None:
    """Refuse to clear a work folder that holds pushed models unless ``fresh`` says so."""
    versions = pushed_versions(workdir)
    if versions and not fresh:
        raise HotdogInputError(
            f"{workdir} holds {len(versions)} pushed model(s) in {paths(workdir)['registry']}; 'hotdog run' trains "
            f"from scratch there: pass --fresh to delete them, or choose another --workdir")


def start_over(workdir: str) -> None:
    """Delete the work folder's data root, pipeline root and registry (its lock stays)."""
    for path in paths(workdir).values():
        fs.remove(path, recursive=True)


def stage_data(data_dirs: list[str], data_root: str) -> list[str]:
    """Split each data set folder's TFRecords into ``data_root/<name>/train-*`` and ``eval-*``
    (:mod:`tasks.eval_split`; path or gs://; idempotent: files already holding the same
    records are not rewritten); returns names. Data sets whose class list differs from the data
    root's are refused before anything is staged."""
    from tasks import dataset_config, eval_split, inputs

    inputs.check_data_sets(data_dirs)
    cards = [(data_dir, json.loads(fs.read_bytes(fs.join(data_dir, dataset_config.CARD)))) for data_dir in data_dirs]
    class_names.admit(data_root, [card for _, card in cards])
    names = []
    for data_dir, card in cards:
        for entry in card["files"]:
            eval_split.stage_file(fs.join(data_dir, entry["file"]), fs.join(data_root, card["name"]), entry["file"])
        names.append(card["name"])
    return names


def check_data_root(data_root: str) -> None:
    """Refuse to start a pipeline that could not train or judge: it needs train and eval files."""
    from tasks import eval_split

    splits = {eval_split.split_name(name.rsplit("/", 1)[-1]) for name in data_files(data_root)}
    if eval_split.TRAIN not in splits:
        raise HotdogInputError(f"nothing to train on: no data set given (--data DIR) and no TFRecord in {data_root}")
    if eval_split.EVAL not in splits:
        raise HotdogInputError(f"nothing to evaluate on: {data_root} holds uploads only, which are train-only; add a "
                               f"curated data set first (hotdog train --data DIR): its eval part is the yardstick")
    if class_names.of_data_root(data_root) is None:
        raise HotdogInputError(f"{data_root} has no class names ({class_names.FILE}): it was filled by an earlier "
                               f"version; add one of its data sets again (hotdog train --data DIR) to record them")


def data_files(data_root: str) -> list[str]:
    """The TFRecord files training reads (``<folder>/<file>``, relative to the local ``data_root``)."""
    if not os.path.isdir(data_root):
        return []
    return sorted(f"{folder}/{name}" for folder in os.listdir(data_root)
                  if os.path.isdir(os.path.join(data_root, folder))
                  for name in os.listdir(os.path.join(data_root, folder))
                  if ".tfrecord" in name and not name.startswith("."))


def pipeline_kwargs(workdir: str, settings: TrainSettings, pipeline_name: str = "hotdog") -> dict:
    from tasks import runners  # imports Beam (seconds): only where a pipeline is built

    p = paths(workdir)
    return dict(pipeline_name=pipeline_name, pipeline_root=p["pipeline_root"], data_root=p["data_root"],
                serving_model_dir=p["registry"], settings=settings, classes=class_names.of_data_root(p["data_root"]),
                frozen_schema=frozen_schema.pinned_copy(workdir, p["pipeline_root"]) or frozen_schema.path(workdir),
                beam_pipeline_args=runners.direct_args())


def check_backend(backend: str, workdir: str) -> None:
    if backend not in BACKENDS:
        raise HotdogInputError(f"--backend {backend!r} is not known; choose one of {', '.join(BACKENDS)}")
    if backend != "vertex" and not workdir:
        raise HotdogInputError(f"--workdir is required with --backend {backend}")


def train(data_dirs: list[str], workdir: str, settings: TrainSettings, backend: str = "local",
          requested_by: str | None = None) -> dict:
    """Stage ``data_dirs`` (none: retrain on the data root as it is), run the pipeline on
    ``backend`` (local or airflow); return the outcome (see :func:`outcome`).
    ``requested_by`` (e.g. a Prefect flow run id) is passed to Airflow runs as conf."""
    check_backend(backend, workdir)
    if backend == "vertex":
        raise HotdogInputError("--backend vertex submits a job and does not wait for a model: use 'hotdog train "
                               "--backend vertex' (tasks.vertex.submit), not this function")
    check_settings(settings)
    if backend == "airflow":
        workdir = os.path.abspath(workdir)  # compared with the folder the DAG was built for
    from tasks import eval_split, uploads

    eval_split.migrate(paths(workdir)["data_root"], uploads.UPLOADS)
    names = stage_data(data_dirs, paths(workdir)["data_root"])
    check_data_root(paths(workdir)["data_root"])
    log.info("training on data sets %s (data root %s)", names, paths(workdir)["data_root"])
    try:
        _run_backend(backend, workdir, settings, names, requested_by)
    except Exception as err:
        anomalies = _anomalies_in(err)
        if anomalies:
            raise HotdogInputError(
                f"training stopped before Transform: the data root {paths(workdir)['data_root']} does not match "
                f"its schema: {anomalies}. Remove the offending data, or edit {frozen_schema.path(workdir)} on "
                f"purpose") from None
        raise
    result = outcome(workdir)
    result["lineage"] = lineage(workdir, names, settings, result)
    if result["pushed_model"]:
        fs.write_bytes_atomic(result["pushed_model"].rstrip("/") + ".lineage.json",
                              (json.dumps(result["lineage"], indent=2) + "\n").encode())
        schema = _latest_output(workdir, "SchemaGen")
        if schema and frozen_schema.freeze(workdir, schema):
            log.info("froze the data's schema in %s: later runs must match it", frozen_schema.path(workdir))
    return result


def _run_backend(backend: str, workdir: str, settings: TrainSettings, names: list[str],
                 requested_by: str | None) -> None:
    if backend == "airflow":
        from tasks import airflow_rest

        airflow_rest.run_pipeline(airflow_rest.AirflowSettings.from_env(), workdir, dataclasses.asdict(settings),
                                  {"data_sets": names, "requested_by": requested_by or "hotdog"})
    else:
        from tasks.component_progress import component_lines
        from tfx_pipeline.backends import local

        local.run(pipeline_kwargs(workdir, settings), watch=component_lines)


def _store(workdir: str):
    """The work folder's ML Metadata store, read-only."""
    from ml_metadata.metadata_store import metadata_store

    return metadata_store.MetadataStore(_sqlite_config(_metadata_file(workdir)))


def _latest_output(workdir: str, component: str) -> str | None:
    """URI of the first output artifact of ``component``'s latest execution, or None."""
    from ml_metadata.proto import metadata_store_pb2

    store = _store(workdir)
    execution = _latest_execution(store, component)
    if execution is None:
        return None
    ids = [e.artifact_id for e in store.get_events_by_execution_ids([execution.id])
           if e.type == metadata_store_pb2.Event.OUTPUT]
    return store.get_artifacts_by_id(ids)[0].uri if ids else None


def _anomalies_in(err: Exception) -> str | None:
    """The anomaly list of a run the anomalies gate stopped (in process, or a failed Airflow
    task's log), else None."""
    from tfx_pipeline.anomalies import DataAnomalies

    if isinstance(err, DataAnomalies):
        text = str(err)
    else:
        text = next((line.split(f"{DataAnomalies.__name__}: ", 1)[1] for line in str(err).splitlines()
                     if f"{DataAnomalies.__name__}: " in line), None)
    prefix = "the examples do not match the schema: "
    return text[len(prefix):] if text and text.startswith(prefix) else text


def _metadata_file(workdir: str) -> str:
    from tfx_pipeline.backends import local

    return local.metadata_path(paths(workdir)["pipeline_root"])


def lineage(workdir: str, data_sets: list[str], settings: TrainSettings, result: dict) -> dict:
    """What produced the latest model, from ML Metadata: data, its fingerprint, parameters, code."""
    from tasks import eval_split

    store = _store(workdir)
    example_gen = _latest_execution(store, "ImportExampleGen")
    trainer = _latest_execution(store, "Trainer")
    return {
        "classes": class_names.of_data_root(paths(workdir)["data_root"]),
        "data_sets": sorted(name for name in os.listdir(paths(workdir)["data_root"])
                            if os.path.isdir(os.path.join(paths(workdir)["data_root"], name))),
        "data_files": data_files(paths(workdir)["data_root"]),
        "evaluated_on": {"examples": result["metrics"].get("example_count"),
                         "data_sets": sorted({f.split("/", 1)[0] for f in data_files(paths(workdir)["data_root"])
                                              if f.split("/", 1)[1].startswith("eval-")}),
                         "rule": eval_split.RULE},
        "requested_data_sets": data_sets,
        "examples_fingerprint": _prop(example_gen, "input_fingerprint") if example_gen else None,
        "parameters": json.loads(_prop(trainer, "custom_config") or "{}") if trainer else dataclasses.asdict(settings),
        "trainer_execution_id": trainer.id if trainer else None,
        "model_uri": result["model_uri"],
        "accuracy": result["metrics"].get("categorical_accuracy"),
        "code_version": code_version(),
    }


def code_version() -> str:
    """``git describe`` of the project checkout, or 'unknown' outside a git checkout."""
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        return subprocess.run(["git", "-C", root, "describe", "--always", "--dirty"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _latest_execution(store, component: str):
    executions = [e for e in store.get_executions()
                  if store.get_execution_types_by_id([e.type_id])[0].name.endswith("." + component)]
    return max(executions, key=lambda e: e.id) if executions else None


def outcome(workdir: str) -> dict:
    """The latest Evaluator verdict and push in ML Metadata: blessed?, pushed model dir, why not."""
    import tensorflow_model_analysis as tfma

    store = _store(workdir)
    blessing = _latest(store, "ModelBlessing")
    pushed = _latest(store, "PushedModel")
    evaluation = _latest(store, "ModelEvaluation")
    model = _latest(store, "Model")
    result = {"blessed": bool(blessing and _prop(blessing, "blessed") == 1), "model_uri": model.uri if model else None,
              "pushed_model": None, "reason": None, "metrics": {}}
    if evaluation is not None:
        validation = tfma.load_validation_result(evaluation.uri)
        reasons = [_failure_text(f) for per_slice in validation.metric_validations_per_slice
                   for f in per_slice.failures]
        result["reason"] = "; ".join(reasons) or None
        result["metrics"] = _metrics(evaluation.uri)
    if result["blessed"] and pushed is not None and _prop(pushed, "pushed") == 1:
        result["pushed_model"] = _prop(pushed, "pushed_destination")
    elif not result["blessed"] and result["reason"] is None:
        result["reason"] = "the Evaluator did not bless the model (see its output in the pipeline root)"
    return result


def _sqlite_config(path: str):
    from ml_metadata.proto import metadata_store_pb2

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = path
    config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return config


def _latest(store, type_name: str):
    artifacts = store.get_artifacts_by_type(type_name)
    return max(artifacts, key=lambda a: a.id) if artifacts else None


def _prop(artifact, name: str):
    value = artifact.custom_properties.get(name)
    if value is None:  # TFX's legacy launchers (the Airflow backend) record these as properties
        value = artifact.properties.get(name)
    if value is None:
        return None
    return value.string_value or value.int_value


def _failure_text(failure) -> str:
    """One failed TFMA check as a sentence: metric, value, threshold."""
    name, value = failure.metric_key.name, failure.metric_value.double_value.value
    threshold = failure.metric_threshold
    if failure.metric_key.is_diff:
        allowed = -threshold.change_threshold.absolute.value
        return (f"{name} is {-value:.4f} below the latest blessed model's "
                f"(allowed regression: {allowed if allowed > 1e-9 else 0:g})")
    return f"{name} {value:.4f} is below the minimum {threshold.value_threshold.lower_bound.value:g}"


def _metrics(evaluation_uri: str) -> dict:
    import tensorflow_model_analysis as tfma

    result = tfma.load_eval_result(evaluation_uri)
    metrics = {}
    for _slice, by_output in result.slicing_metrics[:1]:
        for name, value in by_output.get("", {}).get("", {}).items():
            if "doubleValue" in value:
                metrics[name] = value["doubleValue"]
    return metrics
