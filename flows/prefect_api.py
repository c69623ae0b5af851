"""The Prefect API one ``hotdog`` command talks to.

In order: the API named by ``PREFECT_API_URL`` (environment or Prefect profile); the
server of a running ``hotdog serve`` stack of the work folder (no start-up cost); else a
temporary server on 127.0.0.1, started for this command and stopped after it. Prefect's
own temporary server gives up after 20 s, which a busy 2-core machine exceeds on a fresh
``HOME`` (database migrations); this one waits up to ``HOTDOG_PREFECT_START_SECONDS``
(default :data:`START_SECONDS`) and fails at once if the server process exits.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from typing import Callable, Iterator

from tasks import services
from tasks.errors import HotdogInputError

START_SECONDS = 600
URL_FILE = "api-url"  # written by `hotdog serve` into its state folder


def stack_url(state_dir: str) -> str | None:
    """The API URL of the `hotdog serve` stack in ``state_dir`` if its server is running."""
    try:
        with open(os.path.join(state_dir, URL_FILE)) as handle:
            url = handle.read().strip()
    except OSError:
        return None
    return url if services.running(state_dir, "server") and _healthy(url) else None


def _healthy(url: str, timeout: float = 5) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def start_seconds() -> float:
    value = os.environ.get("HOTDOG_PREFECT_START_SECONDS", str(START_SECONDS))
    try:
        return float(value)
    except ValueError:
        raise HotdogInputError(f"HOTDOG_PREFECT_START_SECONDS must be a number of seconds, got {value!r}") from None


@contextlib.contextmanager
def temporary_server(log_path: str, say: Callable[[str], None]) -> Iterator[str]:
    """A Prefect server (API only, no background services, no UI) on a free port of 127.0.0.1
    for the duration of the block; its output is appended to ``log_path``."""
    port = services.free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    budget = start_seconds()
    say(f"Prefect: starting a temporary server on 127.0.0.1:{port} ('hotdog serve' keeps one running for "
        f"every later command)")
    started = time.monotonic()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                 "--port", str(port), "--no-services", "--no-ui", "--analytics-off"],
                                env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        try:
            services.wait_http(f"{url}/health", "the temporary Prefect server", timeout=budget, proc=proc)
        except RuntimeError as err:
            raise RuntimeError(f"{err} (server output in {log_path}; raise HOTDOG_PREFECT_START_SECONDS, "
                               f"or run 'hotdog serve' and let commands reuse it)") from None
        say(f"Prefect: server ready in {time.monotonic() - started:.1f} s")
        try:
            yield url
        finally:
            _drain_clients()
    finally:
        services.stop_process(proc)


def _drain_clients(timeout: float = 30) -> None:
    """Deliver the logs and events this process still holds before their server goes away."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=timeout, at_exit=False)
    EventsWorker.drain_all(timeout=timeout, at_exit=False)


@contextlib.contextmanager
def api(state_dir: str, log_path: str, say: Callable[[str], None]) -> Iterator[str]:
    """Point this process's Prefect client at an API for the block (see the module doc);
    ``state_dir`` is where `hotdog serve` keeps its stack for this work folder."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    configured = PREFECT_API_URL.value()
    if configured:
        if not _healthy(configured):
            raise HotdogInputError(f"the Prefect API at {configured} (PREFECT_API_URL) does not answer: start that "
                                   f"server, or unset PREFECT_API_URL to use a temporary one")
        say(f"Prefect: using {configured} (PREFECT_API_URL)")
        yield configured
        return
    url = stack_url(state_dir)
    if url:
        say(f"Prefect: using the running 'hotdog serve' server at {url}")
        with temporary_settings({PREFECT_API_URL: url}):
            yield url
        return
    with temporary_server(log_path, say) as url, temporary_settings({PREFECT_API_URL: url}):
        yield url
