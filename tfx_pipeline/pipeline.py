"""``create_pipeline``: the one TFX pipeline definition every backend runs.

ImportExampleGen -> StatisticsGen -> SchemaGen -> ExampleValidator -> AnomaliesGate -> Transform
-> Trainer -> Resolver(latest blessed model) -> Evaluator -> Pusher.

The gate also checks the statistics against the work folder's frozen schema when that file
exists (``frozen_schema``; read when the gate runs) and stops the run on any anomaly.
Transform and the Trainer keep SchemaGen's schema, so an unchanged data root stays served
from the cache.

Continuous training: ExampleGen reads every TFRecord file under ``data_root``, its split
already in its name (``<data set>/train-*``, ``<data set>/eval-*``: data_layout.py), and
fingerprints them, so a run after new files arrive trains on everything present, and a run
with nothing new is served from the cache. The eval split is fixed per image when data enters
the data root, so candidate and latest blessed model are judged on the same examples.

TFX is imported module by module: ``tfx.v1`` also imports the Vertex AI SDK, about 13 s of
every process that builds a pipeline (each Airflow task parses the DAG file again). Transform
and Trainer read their module files in place instead of TFX packaging them into a wheel that
each run builds and pip-installs (about 16 s a run); the code's fingerprint in their
``custom_config`` keeps the cache keyed by the code's content all the same.
"""
from __future__ import annotations

import contextlib
import hashlib
import os

from tfx.components import (Evaluator, ExampleValidator, ImportExampleGen, Pusher, SchemaGen, StatisticsGen,
                            Trainer, Transform)
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import LatestBlessedModelStrategy
from tfx.orchestration.pipeline import Pipeline
from tfx.proto import example_gen_pb2, pusher_pb2, trainer_pb2
from tfx.types import Channel, standard_artifacts

from tfx_pipeline.anomalies import AnomaliesGate
from tfx_pipeline.data_layout import SPLIT_PATTERNS
from tfx_pipeline.settings import DEFAULTS, TrainSettings

HERE = os.path.dirname(os.path.abspath(__file__))
PREPROCESSING_MODULE = os.path.join(HERE, "preprocessing.py")
TRAINER_MODULE = os.path.join(HERE, "trainer.py")


FEATURE_CACHE = "feature-cache"  # under the pipeline root: tfx_pipeline.feature_cache


def code_fingerprint(package: str = HERE) -> str:
    """sha256 of the package's Python files that the components run (all but ``backends/``),
    in path order."""
    paths = []
    for folder, dirs, files in os.walk(package):
        dirs[:] = [d for d in dirs if d not in ("backends", "__pycache__")]
        paths += [os.path.join(folder, name) for name in files if name.endswith(".py")]
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(os.path.relpath(path, package).encode() + b"\0")
        with open(path, "rb") as handle:
            digest.update(handle.read())
    return digest.hexdigest()


@contextlib.contextmanager
def _module_files_in_place():
    """While components are built, TFX does not package user module files into wheels."""
    key = "UNSUPPORTED_DO_NOT_PACKAGE_USER_MODULES"
    saved = os.environ.get(key)
    os.environ[key] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(key)
        else:
            os.environ[key] = saved


def _trainer_runs_in(custom_job: dict | None) -> tuple[type, dict]:
    """The Trainer component class and its extra ``custom_config`` (see ``trainer_custom_job``)."""
    if not custom_job:
        return Trainer, {}
    from tfx.extensions.google_cloud_ai_platform import constants
    from tfx.extensions.google_cloud_ai_platform.trainer.component import Trainer as CustomJobTrainer
    from tfx.extensions.google_cloud_ai_platform.trainer.executor import TRAINING_ARGS_KEY

    return CustomJobTrainer, {constants.ENABLE_VERTEX_KEY: True, constants.VERTEX_REGION_KEY: custom_job["region"],
                              TRAINING_ARGS_KEY: {"project": custom_job["project"], "job_spec": custom_job["job_spec"]}}


def trainer_config(settings: TrainSettings) -> dict:
    """The settings the Trainer's ``run_fn`` reads (its ``custom_config``, keying its cache)."""
    return {"backbone": settings.backbone, "strategy": settings.strategy, "image_size": settings.resolved_image_size(),
            "epochs": settings.epochs, "batch_size": settings.batch_size, "learning_rate": settings.learning_rate,
            "patience": settings.patience, "seed": settings.seed}


def accuracy_eval_config(min_accuracy: float, max_regression: float, label_key: str = "label"):
    """TFMA config: CategoricalAccuracy >= ``min_accuracy`` and at most ``max_regression`` below the
    latest blessed model (0 = the original's "no regression", -1e-10). Models run through their
    ``serving_default`` signature as generic SavedModels: left unset, TFMA first tries to load
    each one (candidate and baseline) as a Keras model."""
    import tensorflow_model_analysis as tfma

    threshold = tfma.MetricThreshold(
        value_threshold=tfma.GenericValueThreshold(lower_bound={"value": min_accuracy}),
        change_threshold=tfma.GenericChangeThreshold(direction=tfma.MetricDirection.HIGHER_IS_BETTER,
                                                     absolute={"value": -max(max_regression, 1e-10)}))
    return tfma.EvalConfig(
        model_specs=[tfma.ModelSpec(signature_name="serving_default", label_key=label_key,
                                    preprocessing_function_names=[], model_type=tfma.TF_GENERIC)],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[tfma.MetricsSpec(metrics=[
            tfma.MetricConfig(class_name="CategoricalAccuracy", threshold=threshold),
            tfma.MetricConfig(class_name="ExampleCount")])])


def create_pipeline(pipeline_name: str, pipeline_root: str, data_root: str, serving_model_dir: str,
                    beam_pipeline_args: list[str], settings: TrainSettings = DEFAULTS,
                    classes: list[str] | None = None, frozen_schema: str | None = None,
                    metadata_connection_config=None, enable_cache: bool = True,
                    preprocessing_module: str = PREPROCESSING_MODULE, trainer_module: str = TRAINER_MODULE,
                    code_in_image: bool = False, trainer_custom_job: dict | None = None) -> Pipeline:
    """Build the pipeline; paths may be local or gs://. ``beam_pipeline_args`` must name the runner
    (e.g. DirectRunner).

    ``classes``: the class names in label order, stored in the model (None: numbered ``0``, ``1``...).

    ``code_in_image``: Transform and Trainer name their functions by import path
    (``tfx_pipeline.preprocessing.preprocessing_fn``, ``tfx_pipeline.trainer.run_fn``) instead of
    module files, for containers that have the ``tfx_pipeline`` package installed (Vertex).

    ``frozen_schema``: the schema.pbtxt path the data must match once it exists (None: only
    the schema SchemaGen infers from the data itself).

    ``trainer_custom_job``: run the Trainer as a Vertex AI custom job (TFX's Google Cloud
    Trainer): ``{"project", "region", "job_spec": CustomJobSpec}``; None: in the pipeline's step."""
    user_code = ({"transform": {"preprocessing_fn": "tfx_pipeline.preprocessing.preprocessing_fn"},
                  "trainer": {"run_fn": "tfx_pipeline.trainer.run_fn"}} if code_in_image else
                 {"transform": {"module_file": preprocessing_module}, "trainer": {"module_file": trainer_module}})
    example_gen = ImportExampleGen(
        input_base=data_root,
        input_config=example_gen_pb2.Input(splits=[example_gen_pb2.Input.Split(name=name, pattern=pattern)
                                                   for name, pattern in SPLIT_PATTERNS.items()]))
    statistics_gen = StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = SchemaGen(statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    example_validator = ExampleValidator(statistics=statistics_gen.outputs["statistics"],
                                         schema=schema_gen.outputs["schema"])
    gate = AnomaliesGate(anomalies=example_validator.outputs["anomalies"],
                         statistics=statistics_gen.outputs["statistics"],
                         frozen_schema=frozen_schema or "").with_id("anomalies_gate")
    code = {"code": code_fingerprint()}
    with _module_files_in_place():
        transform = Transform(examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
                              custom_config=code, **user_code["transform"])
        transform.add_upstream_node(gate)
        trainer_class, trainer_extra = _trainer_runs_in(trainer_custom_job)
        trainer = trainer_class(
            **user_code["trainer"],
            examples=transform.outputs["transformed_examples"],
            transform_graph=transform.outputs["transform_graph"],
            schema=schema_gen.outputs["schema"],
            train_args=trainer_pb2.TrainArgs(num_steps=settings.train_steps),
            eval_args=trainer_pb2.EvalArgs(num_steps=settings.eval_steps),
            custom_config={**trainer_config(settings), "classes": list(classes) if classes else None,
                           "feature_cache": f"{pipeline_root.rstrip('/')}/{FEATURE_CACHE}", **code,
                           **trainer_extra})
    model_resolver = Resolver(
        strategy_class=LatestBlessedModelStrategy,
        model=Channel(type=standard_artifacts.Model),
        model_blessing=Channel(type=standard_artifacts.ModelBlessing)).with_id("latest_blessed_model")
    evaluator = Evaluator(examples=example_gen.outputs["examples"], model=trainer.outputs["model"],
                          baseline_model=model_resolver.outputs["model"],
                          eval_config=accuracy_eval_config(settings.min_accuracy, settings.max_regression))
    pusher = Pusher(
        model=trainer.outputs["model"], model_blessing=evaluator.outputs["blessing"],
        push_destination=pusher_pb2.PushDestination(
            filesystem=pusher_pb2.PushDestination.Filesystem(base_directory=serving_model_dir)))
    return Pipeline(
        pipeline_name=pipeline_name, pipeline_root=pipeline_root,
        components=[example_gen, statistics_gen, schema_gen, example_validator, gate, transform, trainer,
                    model_resolver, evaluator, pusher],
        enable_cache=enable_cache, metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(beam_pipeline_args))
