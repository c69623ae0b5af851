"""Run the pipeline's Airflow DAG through Airflow's stable REST API (/api/v1, basic auth):
check the DAG and its settings, unpause, trigger with ``conf``, follow task states, report.

Settings come from the environment, never from code: HOTDOG_AIRFLOW_URL (default
http://127.0.0.1:8080/api/v1), HOTDOG_AIRFLOW_USER (default admin), HOTDOG_AIRFLOW_PASSWORD,
HOTDOG_AIRFLOW_DAG (default hotdog).
"""
from __future__ import annotations

import dataclasses
import os
import time
import uuid

import httpx

from tasks import progress
from tasks.errors import HotdogInputError
FINISHED = ("success", "failed")


@dataclasses.dataclass
class AirflowSettings:
    url: str = "http://127.0.0.1:8080/api/v1"
    user: str = "admin"
    password: str = ""
    dag_id: str = "hotdog"

    @classmethod
    def from_env(cls) -> "AirflowSettings":
        password = os.environ.get("HOTDOG_AIRFLOW_PASSWORD")
        if not password:
            raise HotdogInputError("HOTDOG_AIRFLOW_PASSWORD is not set: the airflow backend needs the Airflow "
                                   "API password ('hotdog airflow start' prints it)")
        return cls(os.environ.get("HOTDOG_AIRFLOW_URL", cls.url).rstrip("/"),
                   os.environ.get("HOTDOG_AIRFLOW_USER", cls.user), password,
                   os.environ.get("HOTDOG_AIRFLOW_DAG", cls.dag_id))


class AirflowUnreachable(RuntimeError):
    """Airflow stopped answering while a triggered run was being followed (infrastructure)."""


class AirflowClient:
    """The few REST calls the backend needs; errors name the setting to fix.

    Before a run is triggered, an Airflow that does not answer is a setting to fix
    (HotdogInputError). Once a run is triggered (``following``), Airflow may restart under
    it: the client retries with backoff for up to ``unreachable_seconds``, then raises
    AirflowUnreachable naming the run, which keeps going in Airflow."""

    def __init__(self, config: AirflowSettings, timeout: float = 30, unreachable_seconds: float = 600,
                 transport: httpx.BaseTransport | None = None):
        self.config, self.unreachable_seconds = config, unreachable_seconds
        self.following: str | None = None
        self._http = httpx.Client(base_url=config.url, auth=(config.user, config.password), timeout=timeout,
                                  transport=transport)

    def request(self, method: str, path: str, **kwargs) -> httpx.Response:
        deadline, pause = time.monotonic() + self.unreachable_seconds, 1.0
        while True:
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as err:
                problem = f"{type(err).__name__}: {err}"
            else:
                problem = f"HTTP {response.status_code}" if response.status_code in (502, 503, 504) else None
            if problem is None:
                break
            if self.following is None:
                raise HotdogInputError(f"Airflow is unreachable at {self.config.url} (HOTDOG_AIRFLOW_URL): "
                                       f"{problem}") from None
            if time.monotonic() > deadline:
                raise AirflowUnreachable(f"Airflow at {self.config.url} stopped answering ({problem}) for "
                                         f"{self.unreachable_seconds:.0f} s while run {self.following} of DAG "
                                         f"{self.config.dag_id} was going on; it may still be running there")
            progress.log.info("Airflow unreachable (%s); retrying in %.0f s, run %s goes on there", problem, pause,
                              self.following)
            time.sleep(pause)
            pause = min(pause * 2, 30.0)
        if response.status_code in (401, 403):
            raise HotdogInputError(f"Airflow at {self.config.url} refused user {self.config.user!r} (HTTP "
                                   f"{response.status_code}): check HOTDOG_AIRFLOW_USER / HOTDOG_AIRFLOW_PASSWORD")
        return response

    def dag_details(self, wait_seconds: float = 180) -> dict:
        """The DAG's details; while a just-started Airflow has parsed no DAG yet (or is still
        registering it), waits up to ``wait_seconds`` for it."""
        deadline = time.monotonic() + wait_seconds
        while True:
            response = self.request("GET", f"/dags/{self.config.dag_id}/details")
            if response.status_code == 200:
                return response.json()
            errors = [e for e in self.request("GET", "/importErrors").json().get("import_errors", [])
                      if "hotdog" in e.get("filename", "")]
            others_parsed = (response.status_code == 404
                             and self.request("GET", f"/dags/{self.config.dag_id}").status_code == 404
                             and self.request("GET", "/dags", params={"limit": 1}).json().get("total_entries", 0) > 0)
            if errors or others_parsed or time.monotonic() > deadline:
                detail = f"; import error in {errors[0]['filename']}:\n{errors[0]['stack_trace'][-1500:]}" if errors \
                    else " (is deployments/airflow/dags its DAG folder?)"
                raise HotdogInputError(f"DAG {self.config.dag_id!r} (HOTDOG_AIRFLOW_DAG) is not in Airflow at "
                                       f"{self.config.url}{detail}")
            time.sleep(3)

    def trigger(self, conf: dict) -> str:
        dag = self.config.dag_id
        self.request("PATCH", f"/dags/{dag}", params={"update_mask": "is_paused"},
                     json={"is_paused": False}).raise_for_status()
        run_id = f"hotdog-{uuid.uuid4().hex[:12]}"
        response = self.request("POST", f"/dags/{dag}/dagRuns", json={"dag_run_id": run_id, "conf": conf})
        if response.status_code >= 300:
            raise RuntimeError(f"Airflow refused to trigger {dag}: HTTP {response.status_code} {response.text[:500]}")
        return run_id

    def run_state(self, run_id: str) -> str:
        response = self.request("GET", f"/dags/{self.config.dag_id}/dagRuns/{run_id}")
        response.raise_for_status()
        return response.json()["state"]

    def task_states(self, run_id: str) -> dict[str, tuple[str | None, int]]:
        """task id -> (state, try number)."""
        response = self.request("GET", f"/dags/{self.config.dag_id}/dagRuns/{run_id}/taskInstances")
        response.raise_for_status()
        return {t["task_id"]: (t["state"], t["try_number"]) for t in response.json()["task_instances"]}

    def task_log(self, run_id: str, task_id: str, try_number: int) -> str:
        response = self.request("GET", f"/dags/{self.config.dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/logs/"
                                       f"{max(try_number, 1)}", params={"full_content": "true"},
                                headers={"Accept": "text/plain"})
        return response.text if response.status_code == 200 else f"(log unavailable: HTTP {response.status_code})"

    def close(self) -> None:
        self._http.close()


def check_settings(details: dict, workdir: str, expected: dict) -> None:
    """The DAG is built when Airflow parses it: refuse to run it with other settings than asked."""
    params = {k: (v.get("value") if isinstance(v, dict) and "value" in v else v)
              for k, v in (details.get("params") or {}).items()}
    wanted = {"workdir": os.path.abspath(workdir), **expected}
    different = {k: (params.get(k), v) for k, v in wanted.items() if params.get(k) != v}
    if different:
        listed = ", ".join(f"{k}: DAG has {have!r}, asked {want!r}" for k, (have, want) in different.items())
        raise HotdogInputError(f"the Airflow DAG {details.get('dag_id')!r} was built with other settings ({listed}); "
                               "restart it with these ('hotdog airflow start ...') or ask for its settings")


def run_pipeline(config: AirflowSettings, workdir: str, expected: dict, conf: dict,
                 poll_seconds: float = 3, timeout: float = 6 * 3600) -> str:
    """Trigger the DAG, log each task state change, wait for the end; returns the run id.

    Raises RuntimeError naming the failed task, with the end of its log; AirflowUnreachable
    when Airflow stops answering for longer than the client's budget.
    """
    client = AirflowClient(config)
    try:
        check_settings(client.dag_details(), workdir, expected)
        run_id = client.following = client.trigger(conf)
        progress.log.info("Airflow run %s of DAG %s triggered", run_id, config.dag_id)
        seen: dict[str, str | None] = {}
        deadline = time.monotonic() + timeout
        while True:
            state = client.run_state(run_id)
            tasks = client.task_states(run_id)
            for task_id, (task_state, _) in tasks.items():
                if seen.get(task_id) != task_state and task_state:
                    progress.log.info("  Airflow task %s: %s", task_id, task_state)
                    seen[task_id] = task_state
            if state in FINISHED:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"Airflow run {run_id} did not finish within {timeout:.0f} s (state {state})")
            time.sleep(poll_seconds)
        if state == "failed":
            failed = [(t, n) for t, (s, n) in tasks.items() if s == "failed"]
            task_id, try_number = failed[0] if failed else ("(unknown)", 1)
            excerpt = "\n".join(client.task_log(run_id, task_id, try_number).splitlines()[-25:]) if failed else ""
            raise RuntimeError(f"Airflow run {run_id} failed at task {task_id}:\n{excerpt}")
        progress.log.info("Airflow run %s succeeded", run_id)
        return run_id
    finally:
        client.close()
