"""The deployments of deployments/prefect.yaml served from one long-lived process (Prefect's
Runner) instead of a work pool's worker: the same names, parameters, schedules, triggers and
per-deployment concurrency limits, and at most one run at a time (the work queue's limit).
A run starts as soon as the Runner's next poll sees it, without a worker's poll, a ``prefect``
command and the pull step, in a process forked from a server that has already imported Prefect
and the flows (:func:`fork_runs_from_preloaded_server`).

Run as ``python -m flows.served PREFECT_FILE`` with the HOTDOG_* variables of that file set.
"""
from __future__ import annotations

import importlib
import multiprocessing
import os
import sys

# How often the Runner asks for runs of its deployments (s); a run waits up to this long to start.
POLL_SECONDS = 0.5


def flows_to_serve(prefect_file: str) -> list[tuple]:
    """``(flow, options of Runner.add_flow)`` per deployment of the file, ``{{ $VAR }}`` filled
    from the environment. Flows are imported by module, so each run's process gets them from
    the serving process instead of loading the entrypoint from storage."""
    import yaml
    from prefect.events.schemas.deployment_triggers import DeploymentTriggerTypes
    from prefect.schedules import Cron
    from prefect.utilities.templating import apply_values
    from pydantic import TypeAdapter

    with open(prefect_file) as handle:
        config = yaml.safe_load(handle)
    triggers = TypeAdapter(DeploymentTriggerTypes)
    served = []
    for spec in config["deployments"]:
        spec = apply_values(spec, os.environ, remove_notset=False)
        path, function = spec["entrypoint"].split(":")
        flow = getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), function)
        served.append((flow, dict(
            name=spec["name"], description=spec.get("description"), parameters=spec.get("parameters"),
            enforce_parameter_schema=spec.get("enforce_parameter_schema", True),
            concurrency_limit=spec.get("concurrency_limit"),
            schedules=[Cron(s["cron"], timezone=s.get("timezone")) for s in spec.get("schedules") or []],
            triggers=[triggers.validate_python({"name": f"{spec['name']}__automation_{i}", **t})
                      for i, t in enumerate(spec.get("triggers") or [], start=1)])))
    return served


class _ForkServerForSpawn:
    """Stands in for the ``multiprocessing`` module where Prefect asks it for a spawn context:
    answers with ``context``, everything else as ``multiprocessing`` does."""

    def __init__(self, context):
        self._context = context

    def get_context(self, method=None):
        return self._context if method == "spawn" else multiprocessing.get_context(method)

    def __getattr__(self, name):
        return getattr(multiprocessing, name)


def fork_runs_from_preloaded_server(modules: list[str]) -> None:
    """Start the processes of ``prefect.flow_engine.run_flow_in_subprocess`` (each served run's)
    by forking multiprocessing's fork server, started now with ``modules`` imported, instead of
    spawning an interpreter that imports Prefect and the flow first (2-4 s of every run's start).
    A run still gets a process of its own, its arguments and environment as with spawn; the
    server imports no TensorFlow, so nothing multi-threaded is forked. In this process only."""
    from prefect import flow_engine

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(modules)
    multiprocessing.forkserver.ensure_running()
    flow_engine.multiprocessing = _ForkServerForSpawn(context)


def preloaded_modules(served: list[tuple]) -> list[str]:
    """What the fork server imports before any run: Prefect's engine and the served flows' modules."""
    return ["flows", "prefect.flow_engine", *sorted({flow.fn.__module__ for flow, _ in served})]


def main(prefect_file: str) -> None:
    import asyncio

    from prefect.exceptions import TerminationSignal
    from prefect.runner import Runner

    from tasks import settings

    os.chdir(settings.PROJECT_ROOT)
    runner = Runner(name="hotdog", limit=1, query_seconds=POLL_SECONDS)
    served = flows_to_serve(prefect_file)
    for flow, options in served:
        runner.add_flow(flow, **options)
    fork_runs_from_preloaded_server(preloaded_modules(served))
    try:
        asyncio.run(runner.start())
    except (KeyboardInterrupt, TerminationSignal):
        pass


if __name__ == "__main__":
    main(sys.argv[1])
