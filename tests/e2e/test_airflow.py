"""The airflow backend against a real local Airflow (`hotdog airflow start`: scheduler +
webserver on 127.0.0.1, SQLite, the project's pinned Airflow environment). One DAG run: the
work folder is first trained by the local backend (the same ML Metadata), then the `train`
flow triggers the DAG over REST with a new data set, which must train and push a new model
while the webserver is stopped and started again under it (two Airflow runs in a row are
measured by bench/airflow.py). Bad settings fail with the
setting's name."""
import os
import threading
import time

import pytest
from typer.testing import CliRunner

from flows.cli import app
from flows.train_flow import train
from tasks import airflow_local, services, training
from tasks.errors import HotdogInputError
from tests.conftest import progress_lines, small_datasets

pytestmark = pytest.mark.slow
TINY = {"backbone": "tiny", "epochs": 2, "min_accuracy": 0.0, "max_regression": 1.0}


@pytest.fixture(scope="module")
def airflow(shared_images, tmp_path_factory):
    root = tmp_path_factory.mktemp("airflow")
    sets = small_datasets(shared_images, root, 20, ["baseline", "taco_bias"])
    workdir = str(root / "training")
    (root / "training" / "airflow").mkdir(parents=True)
    (root / "training" / "airflow" / "admin-password").write_text("-starts-with-a-dash")
    port = services.free_port()
    started = CliRunner().invoke(app, ["airflow", "start", "--workdir", workdir, "--port", str(port),
                                       "--backbone", "tiny", "--epochs", "2", "--min-accuracy", "0",
                                       "--max-regression", "1"])
    assert started.exit_code == 0, started.output
    env = {"HOTDOG_AIRFLOW_URL": f"http://127.0.0.1:{port}/api/v1",
           "HOTDOG_AIRFLOW_PASSWORD": (root / "training" / "airflow" / "admin-password").read_text().strip()}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield {"workdir": workdir, "sets": sets, "port": port, **env}
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        stopped = CliRunner().invoke(app, ["airflow", "stop", "--workdir", workdir])
        assert "scheduler, webserver" in stopped.output


def wait_for_line(lines, text, timeout=900):
    deadline = time.monotonic() + timeout
    while not any(text in line for line in lines):
        assert time.monotonic() < deadline, f"no progress line with {text!r} in {timeout} s: {lines}"
        time.sleep(0.5)


def restart_the_webserver_mid_run(airflow, lines, done):
    """Stop the webserver once a task runs, start it again once the client has noticed."""
    try:
        wait_for_line(lines, ": running")
        home = os.path.join(airflow["workdir"], "airflow")
        assert services.stop(home, ["webserver"]) == ["webserver"]
        wait_for_line(lines, "Airflow unreachable")
        airflow_local.start(home, airflow["port"], airflow["workdir"], training.TrainSettings(
            backbone="tiny", epochs=2, min_accuracy=0.0, max_regression=1.0))
        done.append("restarted")
    except BaseException as err:  # noqa: BLE001 - reported by the test
        done.append(err)


def test_the_dag_trains_on_new_data_after_a_local_run_through_a_webserver_restart(airflow, prefect_server):
    first = train([airflow["sets"]["baseline"]], airflow["workdir"], backend="local", **TINY)
    done = []
    with progress_lines() as lines:
        restarter = threading.Thread(target=restart_the_webserver_mid_run, args=(airflow, lines, done))
        restarter.start()
        second = train([airflow["sets"]["taco_bias"]], airflow["workdir"], backend="airflow", **TINY)
        restarter.join(timeout=300)
    assert done == ["restarted"], done
    assert any("Airflow unreachable" in line and "goes on there" in line for line in lines), lines
    assert first["pushed_model"] and second["pushed_model"]
    assert first["pushed_model"] != second["pushed_model"]
    assert os.path.isfile(os.path.join(second["pushed_model"], "saved_model.pb"))
    assert second["lineage"]["data_sets"] == ["baseline", "taco_bias"]
    assert first["lineage"]["examples_fingerprint"] != second["lineage"]["examples_fingerprint"]
    assert first["model_uri"] != second["model_uri"]


def test_a_failed_task_is_named_with_its_log(airflow, prefect_server):
    broken = os.path.join(airflow["workdir"], "data_root", "broken", "train-broken.tfrecord")
    os.makedirs(os.path.dirname(broken))
    with open(broken, "wb") as handle:
        handle.write(b"this is not a TFRecord file" * 10)
    try:
        with pytest.raises(RuntimeError, match="failed at task ImportExampleGen:") as failure:
            training.train([], airflow["workdir"], training.TrainSettings(**TINY), backend="airflow")
    finally:
        os.remove(broken)
    assert len(str(failure.value).splitlines()) > 5  # the end of the task's log
    assert "Traceback" in str(failure.value) or "Error" in str(failure.value)


@pytest.mark.parametrize("env, settings, message", [
    ({"HOTDOG_AIRFLOW_PASSWORD": "wrong"}, TINY, "refused user 'admin'.*HOTDOG_AIRFLOW_PASSWORD"),
    ({"HOTDOG_AIRFLOW_URL": "http://127.0.0.1:9/api/v1"}, TINY, r"unreachable at http://127.0.0.1:9/api/v1 "
                                                                r"\(HOTDOG_AIRFLOW_URL\)"),
    ({"HOTDOG_AIRFLOW_DAG": "no_such_dag"}, TINY, "DAG 'no_such_dag' \\(HOTDOG_AIRFLOW_DAG\\) is not in Airflow"),
    ({"HOTDOG_AIRFLOW_PASSWORD": ""}, TINY, "HOTDOG_AIRFLOW_PASSWORD is not set"),
    ({}, {**TINY, "epochs": 5}, "built with other settings \\(epochs: DAG has 2, asked 5\\)"),
])
def test_bad_airflow_settings_name_the_setting(airflow, monkeypatch, env, settings, message):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(HotdogInputError, match=message):
        training.train([airflow["sets"]["baseline"]], airflow["workdir"], training.TrainSettings(**settings),
                       backend="airflow")
