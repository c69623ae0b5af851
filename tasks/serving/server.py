"""``hotdog serve-model``: the REST API and the web pages on one port, following the registry,
until SIGINT or SIGTERM. The served version is recorded under ``<workdir>/serving/`` for
``hotdog models``; the record goes when the server stops."""
from __future__ import annotations

import logging
import os
import signal
import socket

from tasks import fs, inputs
from tasks.errors import HotdogInputError
from tasks.serving import registry
from tasks.serving.models import ModelManager, Servable
from tasks.serving.options import ServerOptions

log = logging.getLogger("hotdog.serving")


def check(options: ServerOptions) -> None:
    """HotdogInputError naming the first bad option (no TensorFlow, no server)."""
    inputs.folder(options.workdir, "work folder")
    if options.version is not None:
        registry.check_version(options.workdir, options.version)
    for name, value, low in (("--port", options.port, 1), ("--max-batch-size", options.max_batch_size, 1),
                             ("--max-bytes", options.max_bytes, 1), ("--poll-seconds", options.poll_seconds, 0.05),
                             ("--batch-window-ms", options.batch_window_ms, 0)):
        if value < low:
            raise HotdogInputError(f"{name} must be >= {low}, got {value}")
    if options.port > 65535:
        raise HotdogInputError(f"--port must be <= 65535, got {options.port}")
    if not options.model_name or "/" in options.model_name or ":" in options.model_name:
        raise HotdogInputError(f"--model-name must be a name without '/' or ':', got {options.model_name!r}")


def default_report_dir() -> str:
    from tasks import settings

    return os.path.join(settings.default_workdir(), "verdict", "final")


def build(options: ServerOptions):
    """The manager and the ASGI app of ``options``."""
    from tasks.serving import rest_api, web

    url = f"http://{options.host}:{options.port}"

    def record(servable: Servable) -> None:
        registry.write_served(options.workdir, options.port, registry.ServedRecord(
            version=servable.version, model_name=options.model_name, url=url, host=socket.gethostname(),
            pid=os.getpid(), since=servable.loaded_at))

    manager = ModelManager(options.workdir, options.model_name, options.version, options.poll_seconds,
                           options.max_batch_size, options.batch_window_ms / 1000, options.max_pixels, on_swap=record)
    app = web.mount(rest_api.create_app(manager, options.max_bytes), manager,
                    options.report_dir or default_report_dir(), options.max_bytes)
    return manager, app


def run(options: ServerOptions) -> None:
    """Serve until SIGINT or SIGTERM, then remove the served record."""
    import uvicorn

    def exit_on(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, exit_on)  # uvicorn re-raises the signal after its own shutdown
    manager, app = build(options)
    log.info("model server for %s on http://%s:%d (model %r)", registry.registry_dir(options.workdir), options.host,
             options.port, options.model_name)
    try:
        manager.start()
        uvicorn.run(app, host=options.host, port=options.port, log_level="info", access_log=False)
    finally:
        manager.stop()
        fs.remove(registry.served_record_path(options.workdir, options.port))
