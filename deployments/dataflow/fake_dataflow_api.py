"""FAKE Dataflow API (v1b3), for tests and offline demos only: it records jobs and runs nothing.

A local HTTP stand-in for the calls Beam's DataflowRunner makes when it submits a job
(``--dataflow_endpoint=http://127.0.0.1:PORT``): CreateJob, GetJob and ListJobMessages. It
checks the create request (a job name, a staged pipeline, a worker pool with a container
image), records every request, and reports each created job as JOB_STATE_FAILED with a
message saying that nothing ran, so a submitting command fails instead of waiting forever
or taking output nobody wrote for complete.

    python deployments/dataflow/fake_dataflow_api.py --port 8091
    http_proxy=http://127.0.0.1:8091 no_proxy=127.0.0.1,localhost \
    HOTDOG_BEAM_ARGS="--dataflow_endpoint=http://dataflow.fake --no_auth" hotdog ingest ... --runner dataflow ...
"""
from __future__ import annotations

import argparse
import itertools
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

JOBS = re.compile(r"^/v1b3/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/jobs"
                  r"(?:/(?P<job>[^/:]+))?(?P<messages>/messages)?$")
NOTHING_RAN = "FAKE Dataflow API: the job was recorded and not run"


def job_problems(job: dict) -> list[str]:
    """What a real CreateJob would reject, or what would leave its workers without code."""
    problems = []
    if not job.get("name"):
        problems.append("the job has no name")
    environment = job.get("environment") or {}
    if not (job.get("steps") or job.get("stepsLocation") or environment.get("sdkPipelineOptions")):
        problems.append("the job carries no pipeline")
    pools = environment.get("workerPools") or []
    images = [image.get("containerImage") for pool in pools for image in pool.get("sdkHarnessContainerImages") or []]
    if not any(images):
        problems.append("no worker pool names an SDK container image")
    temp = environment.get("tempStoragePrefix", "")
    if not temp.startswith(("gs://", "storage.googleapis.com/")):
        problems.append(f"environment.tempStoragePrefix {temp!r} is not in Cloud Storage")
    return problems


class FakeDataflow(ThreadingHTTPServer):
    def __init__(self, address):
        super().__init__(address, Handler)
        self.jobs: dict[str, dict] = {}
        self.requests: list[dict] = []
        self.ids = itertools.count(1)
        self.lock = threading.Lock()

    def record(self, entry: dict) -> None:
        with self.lock:
            self.requests.append(entry)


class Handler(BaseHTTPRequestHandler):
    """Also an HTTP proxy for any host: Beam accepts no port in ``--dataflow_endpoint``, so a
    client may reach the fake as ``http_proxy`` for ``http://dataflow.fake``, which its HTTP
    library tunnels with CONNECT."""

    server: FakeDataflow
    protocol_version = "HTTP/1.1"  # keeps the connection, and so the tunnel, open between requests

    def do_CONNECT(self):  # noqa: N802
        self.send_response(200, "Connection established")
        self.end_headers()
        self.close_connection = False

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._answer(status, {"error": {"code": status, "message": f"FAKE Dataflow API: {message}"}})

    def do_POST(self):  # noqa: N802 - http.server's naming
        path = urlparse(self.path).path
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.record({"method": "POST", "path": path, "body": body})
        match = JOBS.match(path)
        if not match or match["job"]:
            return self._error(404, f"no route {path}")
        problems = job_problems(body)
        if problems:
            return self._error(400, "; ".join(problems))
        job_id = f"fake-{next(self.server.ids):04d}"
        job = {**body, "id": job_id, "projectId": match["project"], "location": match["location"],
               "currentState": "JOB_STATE_PENDING", "createTime": "2026-01-01T00:00:00Z"}
        self.server.jobs[job_id] = job
        self._answer(200, job)

    def do_GET(self):  # noqa: N802
        path = urlparse(self.path).path
        self.server.record({"method": "GET", "path": path})
        match = JOBS.match(path)
        job = self.server.jobs.get(match["job"]) if match and match["job"] else None
        if job is None:
            return self._error(404, f"no job at {path}")
        if match["messages"]:
            return self._answer(200, {"jobMessages": [{"id": "1", "time": "2026-01-01T00:00:01Z",
                                                       "messageImportance": "JOB_MESSAGE_ERROR",
                                                       "messageText": NOTHING_RAN}]})
        job["currentState"] = "JOB_STATE_FAILED"
        self._answer(200, job)

    def log_message(self, *args) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8091)
    args = parser.parse_args()
    server = FakeDataflow(("127.0.0.1", args.port))
    print(f"FAKE Dataflow API on http://127.0.0.1:{args.port} (runs nothing)", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
