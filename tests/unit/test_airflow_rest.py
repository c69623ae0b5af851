"""The Airflow REST client's error classes: before a run, an Airflow that does not answer is
a setting to fix; while a triggered run is followed, it is an outage to ride out."""
import httpx
import pytest

from tasks import airflow_rest
from tasks.errors import HotdogInputError

CONFIG = airflow_rest.AirflowSettings(url="http://127.0.0.1:9/api/v1", password="p")


def client(failures: int, unreachable_seconds: float = 60):
    """A client whose transport fails ``failures`` times (connection refused), then answers."""
    calls = []

    def handle(request):
        calls.append(request)
        if len(calls) <= failures:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(200, json={"state": "running"})

    return airflow_rest.AirflowClient(CONFIG, unreachable_seconds=unreachable_seconds,
                                      transport=httpx.MockTransport(handle)), calls


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch):
    monkeypatch.setattr(airflow_rest.time, "sleep", lambda seconds: None)


def test_unreachable_before_a_run_names_the_setting():
    airflow, calls = client(failures=1)
    with pytest.raises(HotdogInputError, match=r"unreachable at .*\(HOTDOG_AIRFLOW_URL\)"):
        airflow.request("GET", "/dags/hotdog/details")
    assert len(calls) == 1  # a wrong URL is not retried


def test_a_restart_while_a_run_is_followed_is_ridden_out():
    airflow, calls = client(failures=3)
    airflow.following = "hotdog-run-1"
    assert airflow.run_state("hotdog-run-1") == "running"
    assert len(calls) == 4


def test_an_outage_longer_than_the_budget_names_the_run_it_left_running():
    airflow, _ = client(failures=10**9, unreachable_seconds=0.2)
    airflow.following = "hotdog-run-1"
    with pytest.raises(airflow_rest.AirflowUnreachable, match="while run hotdog-run-1 of DAG hotdog"):
        airflow.run_state("hotdog-run-1")
