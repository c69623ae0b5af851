"""Submit the pipeline to Vertex AI Pipelines: stage the data, compile the spec, upload it,
create a PipelineJob, optionally wait.

Settings (environment, never code): HOTDOG_VERTEX_PROJECT, HOTDOG_VERTEX_REGION (default
us-central1), HOTDOG_VERTEX_ROOT (gs://bucket/prefix holding data_root/, pipeline/, registry/,
specs/), HOTDOG_VERTEX_IMAGE (a TFX 1.16 image with the tfx_pipeline package, see
deployments/vertex/Dockerfile), HOTDOG_VERTEX_SERVICE_ACCOUNT (optional) and
HOTDOG_VERTEX_ENDPOINT (optional API endpoint, e.g. the local fake of deployments/vertex).
"""
from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import tempfile
import time

from tasks import frozen_schema, fs, progress, training
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

    @classmethod
    def from_env(cls) -> "VertexSettings":
        missing = [v for v in ("HOTDOG_VERTEX_PROJECT", "HOTDOG_VERTEX_ROOT", "HOTDOG_VERTEX_IMAGE")
                   if not os.environ.get(v)]
        if missing:
            raise HotdogInputError(f"--backend vertex needs {', '.join(missing)} (see deployments/vertex/README.md)")
        root = os.environ["HOTDOG_VERTEX_ROOT"].rstrip("/")
        if not root.startswith("gs://"):
            raise HotdogInputError(f"HOTDOG_VERTEX_ROOT must be a gs:// prefix that Vertex AI can read, got {root!r}")
        return cls(os.environ["HOTDOG_VERTEX_PROJECT"], os.environ.get("HOTDOG_VERTEX_REGION", "us-central1"), root,
                   os.environ["HOTDOG_VERTEX_IMAGE"], os.environ.get("HOTDOG_VERTEX_SERVICE_ACCOUNT") or None,
                   os.environ.get("HOTDOG_VERTEX_ENDPOINT") or None)


def compile_and_upload(config: VertexSettings, settings: training.TrainSettings) -> tuple[str, float]:
    """Compile the PipelineJob JSON and upload it under ``root/specs/``; returns its URI and the
    compile time in seconds."""
    from tfx_pipeline.backends import vertex

    kwargs = training.pipeline_kwargs(config.root, settings)
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
