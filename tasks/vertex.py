"""Submit the pipeline to Vertex AI Pipelines: stage the data, compile the spec, upload it,
create a PipelineJob, optionally wait.

Settings (environment, never code): HOTDOG_VERTEX_PROJECT, HOTDOG_VERTEX_REGION (default
us-central1), HOTDOG_VERTEX_ROOT (gs://bucket/prefix holding data_root/, pipeline/, registry/,
specs/), HOTDOG_VERTEX_IMAGE (a TFX 1.16 image with the tfx_pipeline package, see
deployments/vertex/Dockerfile), HOTDOG_VERTEX_SERVICE_ACCOUNT (optional) and
HOTDOG_VERTEX_ENDPOINT (optional API endpoint, e.g. the local fake of deployments/vertex).
Scale-out (optional): HOTDOG_VERTEX_TRAINER_MACHINE_TYPE runs the Trainer as a Vertex AI custom
job on that machine type, HOTDOG_VERTEX_TRAINER_ACCELERATOR (TYPE or TYPE:COUNT) adds GPUs;
HOTDOG_VERTEX_BEAM_RUNNER=dataflow runs StatisticsGen, Transform and Evaluator on Dataflow
(HOTDOG_VERTEX_DATAFLOW_TEMP_LOCATION, default ROOT/dataflow-tmp; _MAX_WORKERS; _MACHINE_TYPE;
workers run the TFX image as the other steps do).
"""
from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import tempfile
import time

from tasks import frozen_schema, fs, progress, runners, training
from tasks.errors import HotdogInputError

log = logging.getLogger("hotdog.vertex")


@dataclasses.dataclass
class VertexSettings:
    project: str
    region: str
    root: str
    image: str
    service_account: str | None = None
    endpoint: str | None = None
    trainer_machine_type: str | None = None
    trainer_accelerator: str | None = None  # TYPE or TYPE:COUNT
    dataflow: runners.Dataflow | None = None  # the TFX components' Beam jobs on Dataflow

    @classmethod
    def from_env(cls) -> "VertexSettings":
        missing = [v for v in ("HOTDOG_VERTEX_PROJECT", "HOTDOG_VERTEX_ROOT", "HOTDOG_VERTEX_IMAGE")
                   if not os.environ.get(v)]
        if missing:
            raise HotdogInputError(f"--backend vertex needs {', '.join(missing)} (see deployments/vertex/README.md)")
        root = os.environ["HOTDOG_VERTEX_ROOT"].rstrip("/")
        if not root.startswith("gs://"):
            raise HotdogInputError(f"HOTDOG_VERTEX_ROOT must be a gs:// prefix that Vertex AI can read, got {root!r}")
        project, region = os.environ["HOTDOG_VERTEX_PROJECT"], os.environ.get("HOTDOG_VERTEX_REGION", "us-central1")
        image, account = os.environ["HOTDOG_VERTEX_IMAGE"], os.environ.get("HOTDOG_VERTEX_SERVICE_ACCOUNT") or None
        beam_runner = os.environ.get("HOTDOG_VERTEX_BEAM_RUNNER", "direct")
        if beam_runner not in ("direct", "dataflow"):
            raise HotdogInputError(f"HOTDOG_VERTEX_BEAM_RUNNER must be 'direct' or 'dataflow', got {beam_runner!r}")
        dataflow, max_workers = None, _int_env("HOTDOG_VERTEX_DATAFLOW_MAX_WORKERS")
        if beam_runner == "dataflow":
            dataflow = runners.Dataflow(
                project=project, region=region, sdk_container_image=image, service_account=account,
                temp_location=os.environ.get("HOTDOG_VERTEX_DATAFLOW_TEMP_LOCATION") or f"{root}/dataflow-tmp",
                max_workers=max_workers, machine_type=os.environ.get("HOTDOG_VERTEX_DATAFLOW_MACHINE_TYPE") or None)
            dataflow.args()
        config = cls(project, region, root, image, account, os.environ.get("HOTDOG_VERTEX_ENDPOINT") or None,
                     os.environ.get("HOTDOG_VERTEX_TRAINER_MACHINE_TYPE") or None,
                     os.environ.get("HOTDOG_VERTEX_TRAINER_ACCELERATOR") or None, dataflow)
        config.trainer_job()
        return config

    def trainer_job(self) -> dict | None:
        """The Vertex AI CustomJob spec the Trainer runs as (None: it runs in the pipeline's step)."""
        if not self.trainer_machine_type:
            if self.trainer_accelerator:
                raise HotdogInputError("HOTDOG_VERTEX_TRAINER_ACCELERATOR needs HOTDOG_VERTEX_TRAINER_MACHINE_TYPE "
                                       "(e.g. n1-standard-8 for NVIDIA_TESLA_T4)")
            return None
        machine = {"machine_type": self.trainer_machine_type}
        if self.trainer_accelerator:
            kind, _, count = self.trainer_accelerator.partition(":")
            if not kind or (count and (not count.isdigit() or int(count) < 1)):
                raise HotdogInputError(f"HOTDOG_VERTEX_TRAINER_ACCELERATOR must be TYPE or TYPE:COUNT (COUNT >= 1), "
                                       f"got {self.trainer_accelerator!r}")
            machine.update(accelerator_type=kind, accelerator_count=int(count or 1))
        spec = {"worker_pool_specs": [{"machine_spec": machine, "replica_count": 1,
                                       "container_spec": {"image_uri": self.image}}]}
        if self.service_account:
            spec["service_account"] = self.service_account
        return {"region": self.region, "project": self.project, "job_spec": spec}


def _int_env(name: str) -> int | None:
    value = os.environ.get(name)
    if not value:
        return None
    if not value.isdigit():
        raise HotdogInputError(f"{name} must be a whole number, got {value!r}")
    return int(value)


def compile_and_upload(config: VertexSettings, settings: training.TrainSettings) -> tuple[str, float]:
    """Compile the PipelineJob JSON and upload it under ``root/specs/``; returns its URI and the
    compile time in seconds."""
    from tfx_pipeline.backends import vertex

    kwargs = training.pipeline_kwargs(config.root, settings)
    kwargs["trainer_custom_job"] = config.trainer_job()
    if config.dataflow:
        kwargs["beam_pipeline_args"] = runners.runner_args("dataflow", dataflow=config.dataflow)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        local = os.path.join(scratch, "pipeline.json")
        try:
            vertex.compile_spec(kwargs, config.image, local)
        except (ValueError, TypeError, RuntimeError) as err:
            raise HotdogInputError(f"compiling the Vertex pipeline spec failed: {err}") from err
        seconds = time.perf_counter() - started
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        spec_uri = fs.join(config.root, "specs", f"hotdog-{stamp}.json")
        with open(local, "rb") as handle:
            fs.write_bytes_atomic(spec_uri, handle.read())
    log.info("compiled the Vertex spec in %.1f s, uploaded to %s", seconds, spec_uri)
    return spec_uri, seconds


def submit(data_dirs: list[str], config: VertexSettings, settings: training.TrainSettings, wait: bool = False,
           enable_caching: bool = True) -> dict:
    """Stage ``data_dirs`` into ``root/data_root``, compile, upload, submit; returns the job name,
    its console link, the spec URI and, with ``wait``, the final state."""
    from google.cloud import aiplatform

    training.check_settings(settings)
    names = training.stage_data(data_dirs, fs.join(config.root, "data_root"))
    spec_uri, seconds = compile_and_upload(config, settings)
    init = {"project": config.project, "location": config.region}
    if config.endpoint:
        from google.auth.credentials import AnonymousCredentials

        init.update(api_endpoint=config.endpoint, api_transport="rest", credentials=AnonymousCredentials())
    aiplatform.init(**init)
    job = aiplatform.PipelineJob(display_name="hotdog", template_path=spec_uri,
                                 pipeline_root=fs.join(config.root, "pipeline"), enable_caching=enable_caching)
    job.submit(service_account=config.service_account)
    progress.log.info("Vertex pipeline job %s submitted: %s", job.resource_name, job._dashboard_uri())
    frozen = False
    if wait:
        job.wait()
        frozen = job.state.name == "PIPELINE_STATE_SUCCEEDED" and freeze_schema(job, config.root)
        if frozen:
            progress.log.info("froze the data's schema in %s: later runs must match it",
                              frozen_schema.path(config.root))
    return {"backend": "vertex", "job": job.resource_name, "console": job._dashboard_uri(), "spec": spec_uri,
            "compile_seconds": round(seconds, 1), "data_sets": names, "state": job.state.name if wait else "SUBMITTED",
            "pushed_model": None, "froze_schema": frozen}


def freeze_schema(job, root: str) -> bool:
    """After a succeeded job whose Evaluator blessed the model, freeze the schema its SchemaGen
    inferred into ``root/schema/`` (once, as the local backend does); True if written. The
    artifacts are found through the job's task details (where Vertex AI reports each output)."""
    outputs = {task.task_name: task.outputs for task in job.gca_resource.job_detail.task_details}

    def artifact(task: str, name: str) -> str | None:
        found = outputs[task][name].artifacts if task in outputs and name in outputs[task] else []
        return found[0].uri if found else None

    blessing, schema = artifact("Evaluator", "blessing"), artifact("SchemaGen", "schema")
    if not (blessing and schema and fs.exists(fs.join(blessing, "BLESSED"))):
        return False
    return frozen_schema.freeze(root, schema)
