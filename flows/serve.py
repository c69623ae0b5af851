"""A local Prefect stack for the deployments: server on 127.0.0.1 (SQLite, telemetry off),
the deployments of deployments/prefect.yaml and what runs them: a process worker on a work pool
and queue (``worker``), or one long-lived process serving them (``serve``, :mod:`flows.served`;
runs start without the worker's poll and per-run ``prefect`` process); optionally the GCS bridge
and a model server following the deployments' registry.

``start`` leaves them running in the background (pids and logs in ``state_dir``); ``stop``
ends the bridge, the model server and the worker first, then the server.
"""
from __future__ import annotations

import enum
import os
import subprocess
import sys
import time

from flows import prefect_api
from tasks import services, settings
from tasks.errors import HotdogInputError

POOL, QUEUE = "hotdog", "retraining"
PREFECT_FILE = os.path.join(settings.PROJECT_ROOT, "deployments", "prefect.yaml")


class RunsIn(str, enum.Enum):
    """What starts the deployments' runs."""

    worker = "worker"
    serve = "serve"


def environment(state_dir: str, port: int, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The variables every process of the stack runs with."""
    venv_bin = os.path.dirname(sys.executable)
    return {**os.environ,
            "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYTHONPATH": settings.PROJECT_ROOT,
            "TF_USE_LEGACY_KERAS": "1",
            "PREFECT_HOME": os.path.join(state_dir, "prefect-home"),
            "PREFECT_API_URL": api_url(port),
            "PREFECT_SERVER_API_HOST": "127.0.0.1",
            "PREFECT_SERVER_API_PORT": str(port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # no web page may drive the unauthenticated API: state changes need a CSRF token, and
            # browsers may call it only from the server's own UI
            "PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED": "true",
            "PREFECT_SERVER_API_CORS_ALLOWED_ORIGINS": f"http://127.0.0.1:{port}",
            # the worker's poll period bounds how soon a triggered run starts (Prefect's default: 10 s)
            "PREFECT_WORKER_QUERY_SECONDS": os.environ.get("PREFECT_WORKER_QUERY_SECONDS", "2"),
            "DO_NOT_TRACK": "1",
            "HOTDOG_PROJECT_DIR": settings.PROJECT_ROOT,
            **(extra or {})}


def api_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/api"


def _prefect(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([os.path.join(os.path.dirname(sys.executable), "prefect"), *args], env=env,
                            capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise RuntimeError(f"prefect {' '.join(args)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return result


def start(state_dir: str, port: int, deploy_env: dict[str, str], bridge_args: list[str] | None = None,
          model_server_args: list[str] | None = None, runs_in: RunsIn = RunsIn.worker) -> str:
    """Start the stack; returns the API URL. ``deploy_env`` fills the HOTDOG_* variables of prefect.yaml;
    with ``bridge_args`` (options of ``hotdog bridge``) the GCS bridge runs too, with
    ``model_server_args`` (options of ``hotdog serve-model``) a model server."""
    if services.running(state_dir, "server"):
        raise HotdogInputError(f"a stack is already running from {state_dir}; run 'hotdog stop' first")
    os.makedirs(state_dir, exist_ok=True)
    env = environment(state_dir, port, deploy_env)
    prefect = os.path.join(os.path.dirname(sys.executable), "prefect")
    services.spawn("server", state_dir, env, [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)])
    try:
        services.wait_http(f"{api_url(port)}/health", "the Prefect server", timeout=prefect_api.start_seconds())
        with open(os.path.join(state_dir, prefect_api.URL_FILE), "w") as handle:
            handle.write(api_url(port))
        if runs_in is RunsIn.worker:
            _prefect(env, "work-pool", "create", POOL, "--type", "process", "--overwrite")
            if _prefect(env, "work-queue", "inspect", QUEUE, "--pool", POOL, check=False).returncode != 0:
                _prefect(env, "work-queue", "create", QUEUE, "--pool", POOL, "--limit", "1")
            _prefect(env, "--no-prompt", "deploy", "--all", "--prefect-file", PREFECT_FILE)
            services.spawn("worker", state_dir, env, [prefect, "worker", "start", "--pool", POOL, "--type", "process"])
        else:
            services.spawn("runner", state_dir, env, [sys.executable, "-m", "flows.served", PREFECT_FILE])
            wait_served(state_dir, api_url(port))
        if bridge_args is not None:
            services.spawn("bridge", state_dir, env, [sys.executable, "-m", "flows.cli", "bridge", *bridge_args])
        if model_server_args is not None:
            services.spawn("model-server", state_dir, env,
                           [sys.executable, "-m", "flows.cli", "serve-model", *model_server_args])
    except BaseException:
        stop(state_dir)  # never leave a half-started stack behind
        raise
    return api_url(port)


def deployment_names() -> list[str]:
    """The names of PREFECT_FILE's deployments, sorted."""
    import yaml

    with open(PREFECT_FILE) as handle:
        return sorted(spec["name"] for spec in yaml.safe_load(handle)["deployments"])


def wait_served(state_dir: str, url: str, timeout: float = 300) -> None:
    """Wait until the runner has polled for runs of every deployment (their status READY)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
    from prefect.settings import PREFECT_API_URL, temporary_settings

    names, deadline = deployment_names(), time.monotonic() + timeout
    with temporary_settings({PREFECT_API_URL: url}), get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            if not services.running(state_dir, "runner"):
                raise RuntimeError(f"the deployments' runner exited at start; see "
                                   f"{os.path.join(state_dir, 'runner.log')}")
            found = client.read_deployments(deployment_filter=DeploymentFilter(
                name=DeploymentFilterName(any_=names)))
            if sorted(d.name for d in found if d.status and d.status.value == "READY") == names:
                return
            time.sleep(0.5)
    raise RuntimeError(f"the deployments were not served within {timeout:.0f} s; see "
                       f"{os.path.join(state_dir, 'runner.log')}")


def stop(state_dir: str, timeout: float = 30) -> list[str]:
    """Stop the bridge, the model server, the worker or runner, then the server; returns what was running."""
    return services.stop(state_dir, ["bridge", "model-server", "worker", "runner", "server"], timeout)
