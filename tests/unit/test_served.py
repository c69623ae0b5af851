"""The served deployments are those of deployments/prefect.yaml: same names, parameters,
schedules, triggers and limits, with its ``{{ $VAR }}`` placeholders filled; their runs' processes
are forked from a server that has imported Prefect and the flows."""
import json
import os
import subprocess
import sys
import types

from flows import serve, served
from tasks import settings

ENV = {"HOTDOG_DATA": "/data", "HOTDOG_WORKDIR": "/work", "HOTDOG_TRAINING_DIR": "/work/training",
       "HOTDOG_IMAGES": "/hot dogs", "HOTDOG_BUCKET": "my-bucket", "HOTDOG_PREFIX": "in/",
       "HOTDOG_BACKEND": "local", "HOTDOG_BACKBONE": "tiny", "HOTDOG_EPOCHS": "3",
       "HOTDOG_MIN_ACCURACY": "0.5", "HOTDOG_MAX_REGRESSION": "0.01"}


def test_served_deployments_are_the_prefect_yaml_ones(monkeypatch):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    by_name = {options["name"]: (flow, options) for flow, options in served.flows_to_serve(serve.PREFECT_FILE)}
    assert sorted(by_name) == serve.deployment_names() == ["manual", "nightly", "retrain-on-upload"]
    assert {name: flow.name for name, (flow, _) in by_name.items()} == {
        "manual": "hotdog-run", "nightly": "train", "retrain-on-upload": "retrain-on-upload"}
    assert all(options["concurrency_limit"] == 1 for _, options in by_name.values())

    _, nightly = by_name["nightly"]
    assert nightly["parameters"]["workdir"] == "/work/training" and nightly["parameters"]["epochs"] == "3"
    assert not nightly["enforce_parameter_schema"]
    [schedule] = nightly["schedules"]
    assert (schedule.cron, schedule.timezone) == ("0 3 * * *", "UTC")

    _, upload = by_name["retrain-on-upload"]
    [trigger] = upload["triggers"]
    assert trigger.expect == {"gcs.object.finalized"}
    assert trigger.match.model_dump() == {"prefect.resource.id": "gcs.object.my-bucket.*"}
    assert trigger.parameters["object_uri"] == "{{ event.payload.uri }}"  # filled by the server per event
    assert upload["parameters"]["bucket"] == "my-bucket" and upload["parameters"]["prefix"] == "in/"
    assert by_name["manual"][1]["parameters"] == {"source": "/data", "workdir": "/work", "fresh": True}


def test_prefect_takes_a_runs_process_from_the_context_given_for_spawn(monkeypatch):
    """The one place where served runs get their process: if a Prefect release stops asking
    ``prefect.flow_engine``'s ``multiprocessing`` for a spawn context, this fails."""
    from prefect import flow, flow_engine

    started = []

    class RecordingContext:
        def Process(self, target, args):
            started.append(target)
            return types.SimpleNamespace(start=lambda: None)

    monkeypatch.setattr(flow_engine, "multiprocessing", served._ForkServerForSpawn(RecordingContext()))
    flow_engine.run_flow_in_subprocess(flow(lambda: None, name="probe"))
    assert len(started) == 1


def facts_printed_by(script: str) -> dict:
    """The JSON object on the last line that ``script`` prints, run in a fresh interpreter with
    ENV set (a fork server and Prefect's patched module stay out of the test process)."""
    result = subprocess.run([sys.executable, "-c", script], cwd=settings.PROJECT_ROOT, capture_output=True, text=True,
                            timeout=120, env={**os.environ, **ENV, "PYTHONPATH": settings.PROJECT_ROOT})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def report_process(queue) -> None:
    """Run in the forked process: its parent and whether the preloaded module was there before."""
    queue.put({"parent": os.getppid(), "preloaded": "tabnanny" in sys.modules})


def test_a_runs_process_is_forked_from_a_server_with_the_modules_imported():
    script = (
        "import json, os\n"
        "from flows import served\n"
        "from prefect import flow_engine\n"
        "from tests.unit.test_served import report_process\n"
        "served.fork_runs_from_preloaded_server(['tabnanny'])\n"
        "context = flow_engine.multiprocessing.get_context('spawn')\n"
        "queue = context.SimpleQueue()\n"
        "process = context.Process(target=report_process, args=(queue,))\n"
        "process.start(); process.join()\n"
        "print(json.dumps({'me': os.getpid(), 'method': context.get_start_method(),\n"
        "                  'exitcode': process.exitcode, **queue.get()}))\n")
    facts = facts_printed_by(script)
    assert facts["method"] == "forkserver" and facts["exitcode"] == 0
    assert facts["preloaded"] and facts["parent"] != facts["me"]


def test_the_fork_server_imports_no_tensorflow_and_starts_no_thread():
    """Forking a process that runs threads (TensorFlow's pools, a client's) copies their locks
    half-held; the served flows' modules must stay free of both at import."""
    script = (
        "import json, sys, threading\n"
        "from flows import serve, served\n"
        "import importlib\n"
        "modules = served.preloaded_modules(served.flows_to_serve(serve.PREFECT_FILE))\n"
        "for name in modules: importlib.import_module(name)\n"
        "print(json.dumps({'modules': modules, 'tensorflow': 'tensorflow' in sys.modules,\n"
        "                  'threads': threading.active_count()}))\n")
    facts = facts_printed_by(script)
    assert {"prefect.flow_engine", "flows.upload_flow", "flows.train_flow", "flows.run_flow"} <= set(facts["modules"])
    assert not facts["tensorflow"] and facts["threads"] == 1
