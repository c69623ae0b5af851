"""Beam pipeline options with the runner always explicit (DirectRunner by default).

Beam >= 2.68 would otherwise try its Prism runner, which downloads a binary. Flags in
$HOTDOG_BEAM_ARGS (shell syntax) are added to every ingestion and data-set job, e.g.
``--experiments=...`` or Dataflow's ``--network``/``--subnetwork``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shlex
from typing import Iterator

from tasks.errors import HotdogInputError

DASK_RUNNER = "apache_beam.runners.dask.dask_runner.DaskRunner"
# Beam 2.74's DirectRunner first tries its Prism runner, which downloads a binary; a local
# path that does not exist makes it fall back to the in-process runner at once, offline.
NO_PRISM = "--prism_location=/nonexistent/prism-is-not-used-by-hotdog-flows"
# Without a worker image or package among its Beam flags, every TFX Beam component copies TFX
# into a new sdist under /tmp for remote workers (~1.4 s and 42 MB each, never deleted). The
# in-process DirectRunner has no workers to ship it to and never reads this flag.
IN_PROCESS_WORKERS = "--sdk_container_image=none-the-direct-runner-runs-in-process"
RUNNERS = {"direct": "DirectRunner", "dask": DASK_RUNNER, "dataflow": "DataflowRunner"}


@dataclasses.dataclass(frozen=True)
class Dataflow:
    """Where a Dataflow job runs and on what workers. The workers run ``sdk_container_image``,
    an image with this project and the submitting Beam version (deployments/dataflow/Dockerfile);
    ``temp_location``/``staging_location`` are gs:// prefixes (staging defaults to
    TEMP/staging); ``max_workers`` bounds autoscaling."""

    project: str | None = None
    region: str | None = None
    temp_location: str | None = None
    sdk_container_image: str | None = None
    staging_location: str | None = None
    service_account: str | None = None
    max_workers: int | None = None
    machine_type: str | None = None

    def args(self, workers: int = 1) -> list[str]:
        """Checked DataflowRunner flags (``workers``: the initial worker count)."""
        missing = [flag for flag, value in (("--project", self.project), ("--region", self.region),
                                            ("--temp-location", self.temp_location),
                                            ("--sdk-container-image", self.sdk_container_image)) if not value]
        if missing:
            raise HotdogInputError(f"runner 'dataflow' needs {', '.join(missing)} (the image: see "
                                   f"deployments/dataflow/README.md)")
        for flag, value in (("--temp-location", self.temp_location), ("--staging-location", self.staging_location)):
            if value and not value.startswith("gs://"):
                raise HotdogInputError(f"{flag} must be a gs:// URI for Dataflow, got {value!r}")
        if self.max_workers is not None and self.max_workers < workers:
            raise HotdogInputError(f"--max-workers ({self.max_workers}) must be >= --workers ({workers})")
        if self.service_account and "@" not in self.service_account:
            raise HotdogInputError(f"--service-account must be an e-mail address, got {self.service_account!r}")
        staging = self.staging_location or f"{self.temp_location.rstrip('/')}/staging"
        args = [f"--project={self.project}", f"--region={self.region}", f"--temp_location={self.temp_location}",
                f"--staging_location={staging}", f"--sdk_container_image={self.sdk_container_image}",
                f"--num_workers={workers}"]
        optional = (("--service_account_email", self.service_account), ("--max_num_workers", self.max_workers),
                    ("--machine_type", self.machine_type))
        return args + [f"{flag}={value}" for flag, value in optional if value is not None]


def pipeline_options(runner: str = "direct", workers: int = 1, dask_address: str | None = None,
                     dataflow: Dataflow | None = None, extra_args: list[str] | None = None):
    """Beam ``PipelineOptions`` of :func:`runner_args`, then $HOTDOG_BEAM_ARGS, then ``extra_args``;
    the jobs of this process then reuse each DoFn's specs and end bundles without waiting
    (:mod:`tfx_pipeline.beam_dofn_specs`, :mod:`tfx_pipeline.beam_state_sampler`)."""
    from apache_beam.options.pipeline_options import PipelineOptions

    from tfx_pipeline import beam_dofn_specs, beam_state_sampler

    beam_dofn_specs.install()
    beam_state_sampler.install()
    return PipelineOptions(runner_args(runner, workers, dask_address, dataflow)
                           + shlex.split(os.environ.get("HOTDOG_BEAM_ARGS", "")) + list(extra_args or []))


def runner_args(runner: str = "direct", workers: int = 1, dask_address: str | None = None,
                dataflow: Dataflow | None = None) -> list[str]:
    """Checked Beam flags for ``runner`` ('direct', 'dask' or 'dataflow', case-insensitive),
    without importing Beam.

    direct: ``workers`` > 1 runs ``multi_processing`` with that many processes, else in-process.
    dask: ``dask_address`` of a running ``distributed`` scheduler (:func:`beam_options` starts
    a local cluster when there is none).
    dataflow: the job's :class:`Dataflow` settings.
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
        if dask_address:
            host, _, port = dask_address.removeprefix("tcp://").rpartition(":")
            if not host or not port.isdigit():
                raise HotdogInputError(f"--dask-address {dask_address!r} is not HOST:PORT of a dask.distributed "
                                       f"scheduler")
            args += [f"--dask_client_address={dask_address}"]
    else:
        args += (dataflow or Dataflow()).args(workers)
    return args


def check_paths(runner: str, **paths: str) -> None:
    """Dataflow workers reach Cloud Storage only: every path given (by option name) must be gs://."""
    local = [f"--{name.replace('_', '-')} {value}" for name, value in paths.items()
             if runner.lower() == "dataflow" and not value.startswith("gs://")]
    if local:
        raise HotdogInputError(f"--runner dataflow reads and writes Cloud Storage only; not gs://: {', '.join(local)}")


@contextlib.contextmanager
def beam_options(runner: str = "direct", workers: int = 1, dask_address: str | None = None,
                 dataflow: Dataflow | None = None) -> Iterator:
    """:func:`pipeline_options` for the block. Runner 'dask' without ``dask_address``: a
    dask.distributed cluster of ``workers`` single-threaded worker processes on 127.0.0.1 runs
    the block's jobs and is closed after it."""
    if runner.lower() != "dask" or dask_address:
        yield pipeline_options(runner, workers, dask_address, dataflow)
        return
    from distributed import LocalCluster
    from distributed.client import _global_clients

    from tasks import settings

    path = os.pathsep.join(filter(None, [settings.PROJECT_ROOT, os.environ.get("PYTHONPATH")]))
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, env={"PYTHONPATH": path}) as cluster:
        try:
            yield pipeline_options(runner, workers, cluster.scheduler_address)
        finally:
            for client in list(_global_clients.values()):  # Beam's DaskRunner leaves its client open
                if client.scheduler and client.scheduler.address == cluster.scheduler_address:
                    client.close()


def direct_args(workers: int = 1) -> list[str]:
    """DirectRunner flags for TFX components (in-process: one Beam worker, no extra TF copies)."""
    mode = ["--direct_running_mode=in_memory"] if workers == 1 else [
        "--direct_running_mode=multi_processing", f"--direct_num_workers={workers}"]
    return ["--runner=DirectRunner", NO_PRISM, IN_PROCESS_WORKERS, *mode]
