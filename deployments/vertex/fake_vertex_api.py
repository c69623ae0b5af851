"""FAKE Vertex AI Pipelines API, for tests and offline demos only: it runs nothing.

A local HTTP stand-in for the two calls `aiplatform.PipelineJob.submit()` / `.wait()` make
(REST transport): CreatePipelineJob and GetPipelineJob. It checks the create request (a
pipelineSpec with a DAG and an executor for every component, a gs:// pipeline root) and
records every request; a created job reports PIPELINE_STATE_SUCCEEDED when read back, with
the task outputs set in ``task_outputs`` (task name -> output name -> artifact URI; none by
default) as its jobDetail, the way Vertex AI reports where each component wrote.

    python deployments/vertex/fake_vertex_api.py --port 8090 --record requests.jsonl
    HOTDOG_VERTEX_ENDPOINT=http://127.0.0.1:8090 hotdog train --backend vertex ...
"""
from __future__ import annotations

import argparse
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

JOBS = re.compile(r"^/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/pipelineJobs(?:/(?P<job>[^/]+))?$")


def spec_problems(job: dict) -> list[str]:
    """What a real CreatePipelineJob would reject or fail on, as messages."""
    spec = job.get("pipelineSpec") or {}
    problems = []
    tasks = (spec.get("root") or {}).get("dag", {}).get("tasks", {})
    if not tasks:
        problems.append("pipelineSpec.root.dag.tasks is empty")
    components = spec.get("components") or {}
    executors = (spec.get("deploymentSpec") or {}).get("executors", {})
    for name, task in tasks.items():
        component = components.get(task.get("componentRef", {}).get("name", ""))
        if component is None:
            problems.append(f"task {name} refers to a missing component")
        elif component.get("executorLabel") not in executors:
            problems.append(f"task {name} has no executor")
    root = (job.get("runtimeConfig") or {}).get("gcsOutputDirectory", "")
    if not root.startswith("gs://"):
        problems.append(f"runtimeConfig.gcsOutputDirectory {root!r} is not a gs:// path")
    return problems


class FakeVertex(ThreadingHTTPServer):
    def __init__(self, address, record_path: str | None = None):
        super().__init__(address, Handler)
        self.jobs: dict[str, dict] = {}
        self.requests: list[dict] = []
        self.task_outputs: dict[str, dict[str, str]] = {}
        self.record_path = record_path
        self.lock = threading.Lock()

    def record(self, entry: dict) -> None:
        with self.lock:
            self.requests.append(entry)
            if self.record_path:
                with open(self.record_path, "a") as handle:
                    handle.write(json.dumps(entry) + "\n")


class Handler(BaseHTTPRequestHandler):
    server: FakeVertex

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802 - http.server's naming
        url = urlparse(self.path)
        match = JOBS.match(url.path)
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
        self.server.record({"method": "POST", "path": url.path, "query": parse_qs(url.query), "body": body})
        if not match or match["job"]:
            return self._answer(404, {"error": {"code": 404, "message": f"FAKE Vertex: no route {url.path}"}})
        problems = spec_problems(body)
        if problems:
            return self._answer(400, {"error": {"code": 400, "status": "INVALID_ARGUMENT",
                                                "message": "FAKE Vertex: " + "; ".join(problems)}})
        job_id = parse_qs(url.query).get("pipelineJobId", ["job"])[0]
        name = f"projects/{match['project']}/locations/{match['location']}/pipelineJobs/{job_id}"
        if name in self.server.jobs:
            return self._answer(409, {"error": {"code": 409, "status": "ALREADY_EXISTS",
                                                "message": f"FAKE Vertex: {name} already exists"}})
        job = {**body, "name": name, "state": "PIPELINE_STATE_PENDING", "createTime": "2026-01-01T00:00:00Z"}
        self.server.jobs[name] = job
        self._answer(200, job)

    def do_GET(self):  # noqa: N802
        path = urlparse(self.path).path
        if path == "/_fake/requests":
            return self._answer(200, {"requests": self.server.requests})
        self.server.record({"method": "GET", "path": path})
        job = self.server.jobs.get(path[len("/v1/"):])
        if job is None:
            return self._answer(404, {"error": {"code": 404, "message": f"FAKE Vertex: no job {path}"}})
        job["state"] = "PIPELINE_STATE_SUCCEEDED"
        job["jobDetail"] = {"taskDetails": [
            {"taskName": task, "state": "SUCCEEDED",
             "outputs": {name: {"artifacts": [{"uri": uri}]} for name, uri in outputs.items()}}
            for task, outputs in self.server.task_outputs.items()]}
        self._answer(200, job)

    def log_message(self, *args) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--record", help="Append every request as JSON lines to this file.")
    args = parser.parse_args()
    server = FakeVertex(("127.0.0.1", args.port), args.record)
    print(f"FAKE Vertex AI API on http://127.0.0.1:{args.port} (runs nothing)", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
