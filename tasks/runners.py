"""Beam pipeline options with the runner always explicit (DirectRunner by default).

Beam >= 2.68 would otherwise try its Prism runner, which downloads a binary.
"""
from __future__ import annotations

from tasks.errors import HotdogInputError

DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
# Beam 2.74's DirectRunner first tries its Prism runner, which downloads a binary; a local
# path that does not exist makes it fall back to the in-process runner at once, offline.
NO_PRISM = "--prism_location=/nonexistent/prism-is-not-used-by-hotdog-flows"
RUNNERS = {"direct": "DirectRunner", "dask": DASK_RUNNER, "dataflow": "DataflowRunner"}


def pipeline_options(runner: str = "direct", workers: int = 1, dask_address: str | None = None,
                     project: str | None = None, region: str | None = None,
                     temp_location: str | None = None, extra_args: list[str] | None = None):
    """Beam ``PipelineOptions`` of :func:`runner_args` plus ``extra_args``."""
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(runner_args(runner, workers, dask_address, project, region, temp_location)
                           + list(extra_args or []))


def runner_args(runner: str = "direct", workers: int = 1, dask_address: str | None = None,
                project: str | None = None, region: str | None = None,
                temp_location: str | None = None) -> list[str]:
    """Checked Beam flags for ``runner`` ('direct', 'dask' or 'dataflow', case-insensitive),
    without importing Beam.

    direct: ``workers`` > 1 runs ``multi_processing`` with that many processes, else in-process.
    dask: needs ``dask_address`` of a running ``distributed`` scheduler.
    dataflow: needs ``project``, ``region`` and a gs:// ``temp_location``.
    """
    name = runner.lower()
    if name not in RUNNERS:
        raise HotdogInputError(f"--runner {runner!r} is not supported; choose one of: {', '.join(RUNNERS)}")
    if workers < 1:
        raise HotdogInputError(f"--workers must be >= 1, got {workers}")
    args = [f"--runner={RUNNERS[name]}"]
    if name == "direct":
        args.append(NO_PRISM)
        if workers > 1:
            args += ["--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    elif name == "dask":
        if not dask_address:
            raise HotdogInputError("runner 'dask' needs --dask-address (host:port of a dask.distributed scheduler)")
        args += [f"--dask_client_address={dask_address}"]
    else:
        missing = [flag for flag, value in
                   (("--project", project), ("--region", region), ("--temp-location", temp_location)) if not value]
        if missing:
            raise HotdogInputError(f"runner 'dataflow' needs {', '.join(missing)}")
        if not temp_location.startswith("gs://"):
            raise HotdogInputError(f"--temp-location must be a gs:// URI for Dataflow, got {temp_location!r}")
        args += [f"--project={project}", f"--region={region}", f"--temp_location={temp_location}",
                 f"--num_workers={workers}"]
    return args


def direct_args(workers: int = 1) -> list[str]:
    """DirectRunner flags for TFX components (in-process: one Beam worker, no extra TF copies)."""
    mode = ["--direct_running_mode=in_memory"] if workers == 1 else [
        "--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    return ["--runner=DirectRunner", NO_PRISM, *mode]
