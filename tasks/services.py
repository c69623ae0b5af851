"""Background services of a local stack: each a process group with ``<name>.pid`` and
``<name>.log`` in a state folder, started detached and stopped in a given order."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(name: str, state_dir: str, env: dict[str, str], argv: list[str]) -> int:
    """Start ``argv`` in its own session, appending its output to ``state_dir/name.log``."""
    os.makedirs(state_dir, exist_ok=True)
    with open(os.path.join(state_dir, f"{name}.log"), "ab") as log:
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    with open(os.path.join(state_dir, f"{name}.pid"), "w") as handle:
        handle.write(str(proc.pid))
    return proc.pid


def running(state_dir: str, name: str) -> int | None:
    """The pid of service ``name`` if it is alive."""
    try:
        with open(os.path.join(state_dir, f"{name}.pid")) as handle:
            pid = int(handle.read())
    except (OSError, ValueError):
        return None
    try:
        if os.waitpid(pid, os.WNOHANG)[0]:  # our own child that has exited: reap it
            return None
    except ChildProcessError:
        pass  # started by another process (an earlier command)
    try:
        os.kill(pid, 0)
        return pid
    except OSError:
        return None


def stop(state_dir: str, names: list[str], timeout: float = 30) -> list[str]:
    """Stop services in the order given: SIGTERM to each process group, SIGKILL after ``timeout``
    seconds. Returns the names that were running."""
    stopped = []
    for name in names:
        pid = running(state_dir, name)
        if pid is None:
            continue
        os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while running(state_dir, name) and time.monotonic() < deadline:
            time.sleep(0.2)
        if running(state_dir, name):
            os.killpg(pid, signal.SIGKILL)
        os.remove(os.path.join(state_dir, f"{name}.pid"))
        stopped.append(name)
    return stopped


def stop_process(proc: subprocess.Popen, timeout: float = 30) -> None:
    """End ``proc`` and its process group (started with ``start_new_session``): SIGTERM, then
    SIGKILL after ``timeout`` seconds."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_http(url: str, what: str, timeout: float = 120, ok=(200,), proc: subprocess.Popen | None = None) -> None:
    """Wait until ``url`` answers with a status in ``ok``; RuntimeError naming ``what`` otherwise,
    at once if ``proc`` (the server's process) has exited."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} at start")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status in ok:
                    return
        except urllib.error.HTTPError as err:
            if err.code in ok:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{what} did not answer on {url} within {timeout:.0f} s")
