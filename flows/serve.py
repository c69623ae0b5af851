"""A local Prefect stack for the deployments: server on 127.0.0.1 (SQLite, telemetry off),
work pool and queue, the deployments of deployments/prefect.yaml, and a worker.

``start`` leaves the server and the worker running in the background (pids and logs in
``state_dir``); ``stop`` ends the worker first, then the server.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

from tasks import settings
from tasks.errors import HotdogInputError

POOL, QUEUE = "hotdog", "retraining"


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


def _spawn(name: str, state_dir: str, env: dict[str, str], *args: str) -> int:
    log = open(os.path.join(state_dir, f"{name}.log"), "ab")
    proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "prefect"), *args], env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    with open(os.path.join(state_dir, f"{name}.pid"), "w") as handle:
        handle.write(str(proc.pid))
    return proc.pid


def _wait_healthy(port: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{api_url(port)}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the Prefect server did not answer on {api_url(port)} within {timeout:.0f} s")


def start(state_dir: str, port: int, deploy_env: dict[str, str]) -> str:
    """Start the stack; returns the API URL. ``deploy_env`` fills the HOTDOG_* variables of prefect.yaml."""
    if _running(state_dir, "server"):
        raise HotdogInputError(f"a stack is already running from {state_dir}; run 'hotdog stop' first")
    os.makedirs(state_dir, exist_ok=True)
    env = environment(state_dir, port, deploy_env)
    _spawn("server", state_dir, env, "server", "start", "--host", "127.0.0.1", "--port", str(port))
    try:
        _wait_healthy(port)
        _prefect(env, "work-pool", "create", POOL, "--type", "process", "--overwrite")
        if _prefect(env, "work-queue", "inspect", QUEUE, "--pool", POOL, check=False).returncode != 0:
            _prefect(env, "work-queue", "create", QUEUE, "--pool", POOL, "--limit", "1")
        _prefect(env, "--no-prompt", "deploy", "--all", "--prefect-file",
                 os.path.join(settings.PROJECT_ROOT, "deployments", "prefect.yaml"))
        _spawn("worker", state_dir, env, "worker", "start", "--pool", POOL, "--type", "process")
    except BaseException:
        stop(state_dir)  # never leave a half-started stack behind
        raise
    return api_url(port)


def _running(state_dir: str, name: str) -> int | None:
    try:
        with open(os.path.join(state_dir, f"{name}.pid")) as handle:
            pid = int(handle.read())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        return None


def stop(state_dir: str, timeout: float = 30) -> list[str]:
    """Stop the worker, then the server (SIGTERM to each process group, SIGKILL after ``timeout``)."""
    stopped = []
    for name in ("worker", "server"):
        pid = _running(state_dir, name)
        if pid is None:
            continue
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _running(state_dir, name) and time.monotonic() < deadline:
            time.sleep(0.2)
        if _running(state_dir, name):
            os.killpg(pid, signal.SIGKILL)
        os.remove(os.path.join(state_dir, f"{name}.pid"))
        stopped.append(name)
    return stopped
