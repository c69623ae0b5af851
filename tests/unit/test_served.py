"""The served deployments are those of deployments/prefect.yaml: same names, parameters,
schedules, triggers and limits, with its ``{{ $VAR }}`` placeholders filled."""
from flows import serve, served


def test_served_deployments_are_the_prefect_yaml_ones(monkeypatch):
    env = {"HOTDOG_DATA": "/data", "HOTDOG_WORKDIR": "/work", "HOTDOG_TRAINING_DIR": "/work/training",
           "HOTDOG_IMAGES": "/hot dogs", "HOTDOG_BUCKET": "my-bucket", "HOTDOG_PREFIX": "in/",
           "HOTDOG_BACKEND": "local", "HOTDOG_BACKBONE": "tiny", "HOTDOG_EPOCHS": "3",
           "HOTDOG_MIN_ACCURACY": "0.5", "HOTDOG_MAX_REGRESSION": "0.01"}
    for key, value in env.items():
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
