"""The ``hotdog`` command line: one sub-command per flow."""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from enum import Enum
from typing import List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # offline it only logs ERROR lines
os.environ.setdefault("DO_NOT_TRACK", "1")

import typer  # noqa: E402

from flows.serve import RunsIn  # noqa: E402
from tasks.errors import HotdogInputError, WorkFolderBusy  # noqa: E402
from tasks.images import DEFAULT_MAX_PIXELS  # noqa: E402
from tasks.serving.options import DEFAULTS as SERVER  # noqa: E402
from tfx_pipeline.settings import DEFAULTS  # noqa: E402

app = typer.Typer(help="hotdog-flows: ingest labelled images, build data sets, train, judge and predict.",
                  no_args_is_help=True, pretty_exceptions_enable=False)


class Runner(str, Enum):
    direct = "direct"
    dask = "dask"
    dataflow = "dataflow"


class BridgeMode(str, Enum):
    off = "off"
    pubsub = "pubsub"
    poll = "poll"


class Compat(str, Enum):
    original = "original"


VERBOSE = typer.Option(False, "--verbose", "-v", help="Show the full log (TensorFlow, Beam, Prefect) live.")
RUNNER = typer.Option(Runner.direct, help="Beam runner.")
WORKERS = typer.Option(1, help="Worker processes (direct: multi_processing when > 1; dask without --dask-address: "
                               "a local cluster's).")
DASK_ADDRESS = typer.Option(None, help="HOST:PORT of a dask.distributed scheduler for --runner dask (default: "
                                       "start a local cluster of --workers processes).")
DATAFLOW = "Dataflow (--runner dataflow)"
PROJECT = typer.Option(None, help="Google Cloud project of the job.", rich_help_panel=DATAFLOW)
REGION = typer.Option(None, help="Region of the job, e.g. europe-west1.", rich_help_panel=DATAFLOW)
TEMP_LOCATION = typer.Option(None, help="gs:// prefix for the job's temporary files.", rich_help_panel=DATAFLOW)
STAGING_LOCATION = typer.Option(None, help="gs:// prefix for staged files (default: TEMP_LOCATION/staging).",
                                rich_help_panel=DATAFLOW)
SDK_CONTAINER_IMAGE = typer.Option(None, help="Worker image with this project (deployments/dataflow/Dockerfile).",
                                   rich_help_panel=DATAFLOW)
SERVICE_ACCOUNT = typer.Option(None, help="Service account the workers run as.", rich_help_panel=DATAFLOW)
MAX_WORKERS = typer.Option(None, help="Most workers autoscaling may start (--workers: the first ones).",
                           rich_help_panel=DATAFLOW)
MACHINE_TYPE = typer.Option(None, help="Worker machine type, e.g. n2-standard-4.", rich_help_panel=DATAFLOW)
FAIL_IF_BUSY = typer.Option(False, help="Exit 3 at once if another run holds the work folder (default: wait).")


def _dataflow(runner: "Runner", options: dict):
    """The Dataflow settings among a command's ``options`` for ``--runner dataflow`` (None
    otherwise; error if any was given)."""
    from tasks import runners

    given = {field.name: options[field.name] for field in dataclasses.fields(runners.Dataflow)}
    if runner is Runner.dataflow:
        return runners.Dataflow(**given)
    named = [f"--{key.replace('_', '-')}" for key, value in given.items() if value is not None]
    if named:
        raise HotdogInputError(f"{', '.join(named)}: options of --runner dataflow, not --runner {runner.value}")
    return None


def _fail_cleanly(fn):
    """Report bad input (exit 2) or a busy work folder (exit 3) as one line on stderr instead of
    a traceback."""
    try:
        return fn()
    except HotdogInputError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2)
    except WorkFolderBusy as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(3)


def _run(command: str, check, work, workdir: str | None = None, verbose: bool = False, lock: str = "",
         fail_if_busy: bool = False):
    """``check()`` the input (no server, no TensorFlow), then ``work()`` against a Prefect API,
    with the full log in the work folder's logs/ and progress lines on the terminal. ``lock``: a
    training work folder held for the whole command (waited for, unless ``fail_if_busy``)."""
    from flows import console, prefect_api
    from tasks import settings, work_lock

    def main():
        check()
        root = workdir or settings.default_workdir()
        with console.session(command, settings.logs_dir(root), verbose) as session, \
                work_lock.held(lock, command, wait=not fail_if_busy), \
                prefect_api.api(settings.stack_dir(root), session.log_path, session.say):
            return work()

    return _fail_cleanly(main)


@app.command()
def ingest(source: str = typer.Argument(..., help="Folder-per-category image tree (path or gs://)."),
           out: str = typer.Option(..., "--out", help="Output folder (path or gs://)."),
           review: Optional[str] = typer.Option(None, help="Review manifest JSON: category -> rejected names."),
           max_per_category: Optional[int] = typer.Option(None, help="Accept at most N images per category."),
           max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, help="Reject images with more pixels (decompression "
                                                                   "bombs)."),
           runner: Runner = RUNNER, workers: int = WORKERS, dask_address: Optional[str] = DASK_ADDRESS,
           project: Optional[str] = PROJECT, region: Optional[str] = REGION,
           temp_location: Optional[str] = TEMP_LOCATION, staging_location: Optional[str] = STAGING_LOCATION,
           sdk_container_image: Optional[str] = SDK_CONTAINER_IMAGE, service_account: Optional[str] = SERVICE_ACCOUNT,
           max_workers: Optional[int] = MAX_WORKERS, machine_type: Optional[str] = MACHINE_TYPE,
           verbose: bool = VERBOSE):
    """Validate, deduplicate and write images as TFRecords + manifest.jsonl + summary.json."""
    dataflow = _fail_cleanly(lambda options=locals(): _dataflow(runner, options))
    from tasks import inputs


    def work():
        from flows.ingest_flow import ingest_images

        return ingest_images(source, out, review, max_per_category, max_pixels, runner.value, workers, dask_address,
                             dataflow)

    summary = _run("ingest", lambda: inputs.check_ingest(source, review, max_pixels, runner.value, workers,
                                                         dask_address, dataflow, out), work, verbose=verbose)
    typer.echo(json.dumps({"out": out, "files": summary["files"], **summary["totals"]}))


@app.command()
def datasets(source: str = typer.Argument(..., help="An ingest output folder (or a plain tree with --compat)."),
             out: str = typer.Option(..., "--out", help="Output folder: one sub-folder per data set."),
             config: Optional[str] = typer.Option(None, help="Data-set config (default: data/datasets.yaml)."),
             name: Optional[List[str]] = typer.Option(None, "--name", help="Data set(s) to build (default: all)."),
             compat: Optional[Compat] = typer.Option(None, help="'original': reproduce the notebook's TFRecords."),
             shards: int = typer.Option(1, help="Output files per data set."),
             gzip: bool = typer.Option(False, help="GZIP-compress the TFRecords."),
             runner: Runner = RUNNER, workers: int = WORKERS, dask_address: Optional[str] = DASK_ADDRESS,
             project: Optional[str] = PROJECT, region: Optional[str] = REGION,
             temp_location: Optional[str] = TEMP_LOCATION, staging_location: Optional[str] = STAGING_LOCATION,
             sdk_container_image: Optional[str] = SDK_CONTAINER_IMAGE,
             service_account: Optional[str] = SERVICE_ACCOUNT, max_workers: Optional[int] = MAX_WORKERS,
             machine_type: Optional[str] = MACHINE_TYPE, verbose: bool = VERBOSE):
    """Build named, class-balanced data sets (image + one-hot label) with a data-set card each."""
    dataflow = _fail_cleanly(lambda options=locals(): _dataflow(runner, options))
    from tasks import inputs

    mode = compat.value if compat else None

    def work():
        from flows.datasets_flow import build_datasets

        return build_datasets(source, out, config, name or None, mode, shards, gzip, runner.value, workers,
                              dask_address, dataflow)

    cards = _run("datasets", lambda: inputs.check_datasets(source, config, name or None, mode, shards, runner.value,
                                                           workers, dask_address, dataflow, out), work,
                 verbose=verbose)
    typer.echo(json.dumps({n: c["examples"] for n, c in cards.items()}))


@app.command()
def train(data: List[str] = typer.Option(..., "--data", help="Data set folder(s) from 'hotdog datasets'."),
          workdir: str = typer.Option("", help="Training work folder: data root, pipeline root, registry "
                                              "(vertex: HOTDOG_VERTEX_ROOT instead)."),
          backend: str = typer.Option("local", help="local | airflow (HOTDOG_AIRFLOW_*) | vertex (HOTDOG_VERTEX_*)."),
          backbone: str = typer.Option(DEFAULTS.backbone, help="efficientnet_lite0 | efficientnet_b0 | tiny."),
          strategy: str = typer.Option(DEFAULTS.strategy, help="fast (frozen backbone, head on cached features) | "
                                                              "finetune."),
          image_size: Optional[int] = typer.Option(DEFAULTS.image_size, help="Square input size (default: the "
                                                                              "backbone's)."),
          epochs: int = typer.Option(DEFAULTS.epochs, help=f"Maximum epochs (early stopping on val_accuracy, "
                                                           f"patience {DEFAULTS.patience})."),
          train_steps: int = typer.Option(DEFAULTS.train_steps, help="finetune: steps per epoch."),
          eval_steps: int = typer.Option(DEFAULTS.eval_steps, help="finetune: validation steps per epoch."),
          min_accuracy: float = typer.Option(DEFAULTS.min_accuracy, help="Evaluator: minimum CategoricalAccuracy "
                                                                         "to bless."),
          max_regression: float = typer.Option(DEFAULTS.max_regression, help="Evaluator: allowed accuracy drop vs "
                                                                             "the latest blessed model (0 = none, "
                                                                             "as the original)."),
          seed: int = typer.Option(DEFAULTS.seed, help="Seed of the model's initialisation and shuffle."),
          wait: bool = typer.Option(False, help="vertex: wait for the job to end."),
          fail_if_busy: bool = FAIL_IF_BUSY,
          verbose: bool = VERBOSE):
    """Run the TFX pipeline; print the pushed model folder last, or exit 1 with why it was not blessed.
    With --backend vertex: print the submitted job and its console link."""
    from tasks import inputs, training

    def check():
        training.check_backend(backend, workdir)
        training.check_settings(training.TrainSettings(
            backbone=backbone, strategy=strategy, image_size=image_size, epochs=epochs, train_steps=train_steps,
            eval_steps=eval_steps, min_accuracy=min_accuracy, max_regression=max_regression, seed=seed))
        inputs.check_data_sets(data)

    def work():
        from flows.train_flow import train as train_flow

        return train_flow(data, workdir, backend, backbone=backbone, strategy=strategy, image_size=image_size,
                          epochs=epochs, train_steps=train_steps, eval_steps=eval_steps, min_accuracy=min_accuracy,
                          max_regression=max_regression, seed=seed, wait=wait, fail_if_busy=fail_if_busy)

    local = backend != "vertex"
    result = _run("train", check, work, workdir=workdir if local else None, verbose=verbose,
                  lock=workdir if local else "", fail_if_busy=fail_if_busy)
    if backend == "vertex":
        typer.echo(f"{result['job']} ({result['state']})\n{result['console']}")
        return
    if not result["pushed_model"]:
        typer.echo(f"not blessed: {result['reason']}", err=True)
        raise typer.Exit(1)
    typer.echo(result["pushed_model"])


@app.command("add-data")
def add_data(uris: List[str] = typer.Argument(..., help="TFRecord files (paths or gs://) of tf.Examples with "
                                                        "'image' and a one-hot 'label'."),
             workdir: str = typer.Option(..., help="Training work folder whose data root the files join."),
             fail_if_busy: bool = FAIL_IF_BUSY,
             verbose: bool = VERBOSE):
    """Check each file record by record and add it to the data root under a name of its own; the
    next training run uses it. A bad file is quarantined and named: exit 2."""
    from tasks import fs, inputs

    files = [uri if fs.is_remote(uri) else os.path.abspath(uri) for uri in uris]

    def work():
        from flows.add_data_flow import add_data as add_data_flow

        return add_data_flow(files, workdir, fail_if_busy)

    accounting = _run("add-data", lambda: inputs.check_add_data(files, workdir), work, workdir=workdir,
                      verbose=verbose, lock=workdir, fail_if_busy=fail_if_busy)
    for entry in accounting:
        typer.echo(json.dumps(entry, ensure_ascii=False))
    refused = [entry["uri"] for entry in accounting if "refused" in entry]
    if refused:
        typer.echo(f"error: {len(refused)} file(s) refused and quarantined: {', '.join(refused)}", err=True)
        raise typer.Exit(2)


@app.command()
def verdict(model: List[str] = typer.Option(..., "--model", help="Pushed model folder, optionally NAME=DIR."),
            images: str = typer.Option(..., help="Folder of images to score."),
            title: Optional[str] = typer.Option(None, help="Title of the report (default: 'Verdict')."),
            out: str = typer.Option(..., help="Where summary.json, predictions.csv, verdict.png, report.md go."),
            verbose: bool = VERBOSE):
    """Score the images with each model: mean probability per class with 95 % bootstrap intervals."""
    from tasks import inputs

    models = dict(m.split("=", 1) if "=" in m else (os.path.basename(m.rstrip("/")), m) for m in model)

    def work():
        from flows.verdict_flow import verdict as verdict_flow

        from tasks.verdict import DEFAULT_TITLE

        return verdict_flow(models, images, out, title or DEFAULT_TITLE)

    summary = _run("verdict", lambda: inputs.check_verdict(models, images), work, verbose=verbose)
    typer.echo(json.dumps({e["model"]: {c: round(s["mean"], 4) for c, s in e["scores"].items()}
                           for e in summary["models"]}, ensure_ascii=False))


class Format(str, Enum):
    table = "table"
    jsonl = "jsonl"
    csv = "csv"


@app.command()
def predict(paths: List[str] = typer.Argument(..., help="Image files, folders of images, or gs:// URIs."),
            model: Optional[str] = typer.Option(None, help="A SavedModel folder (default: the latest blessed model "
                                                          "of --workdir)."),
            workdir: Optional[str] = typer.Option(None, help="Training work folder whose registry holds the model "
                                                            "(default: $HOTDOG_WORKDIR/training)."),
            output: Format = typer.Option(Format.table, "--format", help="table | jsonl | csv.")):
    """Print, per image, the top class and every class's probability (names from the model). An
    undecodable file gets a line with the reason; exit 2 only if no image could be scored."""
    from tasks.serving import predict as predictor
    from tasks import settings

    def main():
        model_dir = model or predictor.latest_model(workdir or os.path.join(settings.default_workdir(), "training"))
        names, rows = predictor.predict(paths, model_dir)
        typer.echo(predictor.render(names, rows, output.value), nl=False)
        if not names:
            raise HotdogInputError(f"no image could be scored ({len(rows)} file(s) given)")

    _fail_cleanly(main)


@app.command()
def run(experiment: Optional[str] = typer.Option(None, help="Experiment file (default: "
                                                            "data/experiments/hotdog.yaml, the demo)."),
        data: Optional[str] = typer.Option(None, help="Image tree (default: the experiment's source, else "
                                                      "$HOTDOG_DATA, else data/hotdog-images or ../shared, else "
                                                      "'hotdog data fetch' first)."),
        workdir: Optional[str] = typer.Option(None, help="Where outputs go (default: $HOTDOG_WORKDIR or data/)."),
        review: Optional[str] = typer.Option(None, help="Review manifest JSON (default: the experiment's)."),
        images: Optional[str] = typer.Option(None, help="Images to judge (default: the experiment's judge)."),
        backbone: Optional[str] = typer.Option(None, help=f"Backbone (default: the experiment's, else "
                                                          f"{DEFAULTS.backbone})."),
        strategy: Optional[str] = typer.Option(None, help=f"fast | finetune (default: the experiment's, else "
                                                          f"{DEFAULTS.strategy})."),
        epochs: Optional[int] = typer.Option(None, help=f"Maximum epochs per model (default: the experiment's, "
                                                        f"else {DEFAULTS.epochs})."),
        repeats: Optional[int] = typer.Option(None, help="Train every step N times with other seeds (default: the "
                                                         "experiment's, else 1)."),
        max_per_category: Optional[int] = typer.Option(None, help="Ingest at most N images per category "
                                                                  "(a quick run)."),
        min_accuracy: Optional[float] = typer.Option(None, help=f"Evaluator: minimum CategoricalAccuracy to bless "
                                                                f"(default: the experiment's, else "
                                                                f"{DEFAULTS.min_accuracy})."),
        max_regression: Optional[float] = typer.Option(None, help=f"Evaluator: allowed accuracy drop vs the "
                                                                  f"previous model (default: the experiment's, else "
                                                                  f"{DEFAULTS.max_regression})."),
        workers: int = typer.Option(1, help="Beam worker processes for ingestion and data sets."),
        fresh: bool = typer.Option(False, help="Delete the models of an earlier run in WORKDIR/run/ first "
                                               "(without it, a run refuses to)."),
        fail_if_busy: bool = FAIL_IF_BUSY,
        verbose: bool = VERBOSE):
    """An experiment end to end: ingest, data sets, one model per step by continuous training, a
    verdict report. It trains in WORKDIR/run/, never in the deployments' WORKDIR/training."""
    from tasks import experiment as experiments
    from tasks import inputs, settings, training

    plan = _fail_cleanly(lambda: experiments.load(experiment))
    _fail_cleanly(lambda: training.check_settings(plan.train.replace(
        backbone=backbone, strategy=strategy, epochs=epochs, min_accuracy=min_accuracy,
        max_regression=max_regression)))
    root = workdir or settings.default_workdir()
    _fail_cleanly(lambda: training.check_can_start_over(training.demo_dir(root), fresh))
    source = data or plan.source or settings.default_source() or _fetch_public_images()
    judged = images or plan.judged(source)

    def check():
        if repeats is not None and repeats < 1:
            raise HotdogInputError(f"--repeats must be >= 1, got {repeats}")
        if not images:
            experiments.check_images(plan, judged)
        inputs.check_run(source, judged, review or plan.review, workers)

    def work():
        from flows.run_flow import hotdog_run

        return hotdog_run(source, root, plan.path, review, judged, backbone, strategy, epochs, min_accuracy,
                          max_regression, repeats, workers=workers, max_per_category=max_per_category,
                          fresh=fresh, fail_if_busy=fail_if_busy)

    result = _run("run", check, work, workdir=workdir, verbose=verbose, lock=training.demo_dir(root),
                  fail_if_busy=fail_if_busy)
    typer.echo(result["report"] or "no model was blessed: see the log")


@app.command("serve-model")
def serve_model(workdir: Optional[str] = typer.Option(None, help="Training work folder whose registry/ is served (path "
                                                                 "or gs://; default: $HOTDOG_WORKDIR/training)."),
                host: str = typer.Option(SERVER.host, help="Address to bind (anything but 127.0.0.1 needs auth in "
                                                          "front: see the README)."),
                port: int = typer.Option(SERVER.port, help="Port of the REST API and the web page."),
                version: Optional[str] = typer.Option(None, help="Serve this version only (default: the pinned "
                                                                 "version, else the latest)."),
                model_name: str = typer.Option(SERVER.model_name, help="NAME in /v1/models/NAME (TF Serving's "
                                                                       "default)."),
                poll_seconds: float = typer.Option(SERVER.poll_seconds, help="How often the registry is checked for "
                                                                             "new versions and pins."),
                max_batch_size: int = typer.Option(SERVER.max_batch_size, help="Images per server-side batch."),
                batch_window_ms: float = typer.Option(SERVER.batch_window_ms, help="How long a batch waits for more "
                                                                                   "requests."),
                max_bytes: int = typer.Option(SERVER.max_bytes, help="Largest request body (413 beyond)."),
                max_pixels: int = typer.Option(SERVER.max_pixels, help="Larger images are refused (400), as in "
                                                                       "ingestion."),
                report: Optional[str] = typer.Option(None, help="Experiment report folder shown at /report (default: "
                                                                "$HOTDOG_WORKDIR/verdict/final, from 'hotdog run').")):
    """Serve the latest blessed model of a registry over TF Serving's REST API, with a web page
    at /; follows new pushes and pins without a restart."""
    from tasks import settings
    from tasks.serving import server

    options = dataclasses.replace(
        SERVER, workdir=workdir or os.path.join(settings.default_workdir(), "training"), host=host, port=port,
        model_name=model_name, version=version, poll_seconds=poll_seconds, max_batch_size=max_batch_size,
        batch_window_ms=batch_window_ms, max_bytes=max_bytes, max_pixels=max_pixels, report_dir=report)
    _fail_cleanly(lambda: server.check(options))
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server.run(options)


models_app = typer.Typer(help="The registry of a training work folder: list, show, pin, unpin, rm.",
                         no_args_is_help=True)
app.add_typer(models_app, name="models")
MODELS_WORKDIR = typer.Option(None, "--workdir", help="Training work folder (default: $HOTDOG_WORKDIR/training).")


def _models_workdir(workdir: Optional[str]) -> str:
    from tasks import inputs, settings

    root = workdir or os.path.join(settings.default_workdir(), "training")
    inputs.folder(root, "work folder")
    return root


@models_app.command("list")
def models_list(workdir: Optional[str] = MODELS_WORKDIR,
                as_json: bool = typer.Option(False, "--json", help="One JSON object per version.")):
    """Every version: pushed at, data sets, accuracy, the evaluation that blessed it, served, pinned."""
    from tasks.serving import registry

    rows = _fail_cleanly(lambda: registry.describe(_models_workdir(workdir)))
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    typer.echo(f"{'version':<11} {'pushed at (UTC)':<20} {'accuracy':>8}  {'served':<6} {'pinned':<6} data sets; "
               f"blessed by")
    for row in rows:
        accuracy = "" if row["accuracy"] is None else f"{row['accuracy']:.4f}"
        typer.echo(f"{row['version']:<11} {row['pushed_at'][:19].replace('T', ' '):<20} {accuracy:>8}  "
                   f"{'yes' if row['served'] else '':<6} {'yes' if row['pinned'] else '':<6} "
                   f"{', '.join(row['data_sets'] or []) or '?'}; {row['blessed_by'] or '?'}"
                   f"{'' if row['complete'] else ' (incomplete: no saved_model.pb)'}")


@models_app.command("show")
def models_show(version: str = typer.Argument(..., help="A version from 'hotdog models list'."),
                workdir: Optional[str] = MODELS_WORKDIR):
    """A version's lineage (data, parameters, code, evaluation) as JSON."""
    from tasks.serving import registry

    def main():
        root = _models_workdir(workdir)
        registry.check_version(root, version)
        return {"version": version, "path": registry.version_dir(root, version),
                "pushed_at": registry.pushed_at(version), "lineage": registry.lineage(root, version)}

    typer.echo(json.dumps(_fail_cleanly(main), indent=2, ensure_ascii=False))


@models_app.command("pin")
def models_pin(version: str = typer.Argument(..., help="The version every model server of the folder serves."),
               workdir: Optional[str] = MODELS_WORKDIR):
    """Serve VERSION instead of the latest (a rollback); the servers follow within seconds."""
    from tasks.serving import registry

    _fail_cleanly(lambda: registry.pin(_models_workdir(workdir), version))
    typer.echo(f"pinned version {version}")


@models_app.command("unpin")
def models_unpin(workdir: Optional[str] = MODELS_WORKDIR):
    """Go back to serving the latest version."""
    from tasks.serving import registry

    was = _fail_cleanly(lambda: registry.unpin(_models_workdir(workdir)))
    typer.echo(f"unpinned version {was}" if was else "nothing was pinned")


@models_app.command("rm")
def models_rm(version: str = typer.Argument(..., help="The version to delete."),
              workdir: Optional[str] = MODELS_WORKDIR):
    """Delete a version and its lineage; refused for the pinned or a served version."""
    from tasks.serving import registry

    _fail_cleanly(lambda: registry.remove(_models_workdir(workdir), version))
    typer.echo(f"removed version {version}")


def _fetch_public_images() -> str:
    """Download the public image set into data/ for a first `make run`; exit 1 with a hint offline."""
    from tasks import fetch, settings

    typer.echo(f"No image data (HOTDOG_DATA is not set): fetching the public hot-dog set into "
               f"{settings.FETCHED_DATA} ...", err=True)
    try:
        _fetch_with_progress(settings.FETCHED_DATA, fetch.DEFAULT_BASE_URL)
    except fetch.FetchError as err:
        typer.echo(f"error: {err}\nPoint HOTDOG_DATA at a folder-per-category image tree instead, e.g. "
                   f"HOTDOG_DATA=/path/to/images make run", err=True)
        raise typer.Exit(1)
    return settings.FETCHED_DATA


def _fetch_with_progress(dest: str, base_url: str, workers: int = 8):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from tasks import fetch

    total = len(fetch.read_checksums())
    columns = (TextColumn("fetch"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("files", total=total)
        return fetch.fetch(dest, base_url, workers=workers, on_file=lambda _rel: bar.advance(task))


data_app = typer.Typer(help="The demo's public image set.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("fetch")
def data_fetch(dest: Optional[str] = typer.Option(None, help="Where the <category>/<file> tree goes "
                                                             "(default: data/hotdog-images)."),
               base_url: Optional[str] = typer.Option(None, help="Repository root at the pinned commit; files are "
                                                                 "at BASE/data/intermediary/<category>/<file>."),
               workers: int = typer.Option(8, help="Parallel downloads.")):
    """Download the original project's 1,800 images (MIT), verified against the shipped checksums;
    a re-run fetches only what is missing or wrong."""
    from tasks import fetch, settings

    target = dest or settings.FETCHED_DATA
    try:
        result = _fetch_with_progress(target, base_url or fetch.DEFAULT_BASE_URL, workers)
    except fetch.FetchError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(1)
    typer.echo(f"{result.files} files verified in {target} ({result.downloaded} downloaded, "
               f"{result.already_present} already there, {result.seconds} s)")


@app.command()
def serve(state_dir: Optional[str] = typer.Option(None, help="Server/worker state (default: WORKDIR/prefect)."),
          port: int = typer.Option(4200, help="Port of the Prefect server on 127.0.0.1."),
          data: Optional[str] = typer.Option(None, help="Image tree for the 'manual' deployment."),
          workdir: Optional[str] = typer.Option(None, help="Work folder (default: $HOTDOG_WORKDIR or data/)."),
          images: Optional[str] = typer.Option(None, help="Images to judge (default: the demo experiment's)."),
          bucket: str = typer.Option("hotdog-uploads", help="Bucket whose uploads trigger retrain-on-upload."),
          backend: str = typer.Option("local", help="Backend of nightly/upload retraining (local | airflow | "
                                                    "vertex; their HOTDOG_AIRFLOW_* / HOTDOG_VERTEX_* settings "
                                                    "come from this environment)."),
          backbone: str = typer.Option(DEFAULTS.backbone, help="Backbone of nightly/upload retraining."),
          epochs: int = typer.Option(DEFAULTS.epochs, help="Maximum epochs of nightly/upload retraining."),
          min_accuracy: float = typer.Option(DEFAULTS.min_accuracy, help="Evaluator minimum for nightly/upload "
                                                                         "retraining."),
          max_regression: float = typer.Option(DEFAULTS.max_regression, help="Allowed regression for nightly/upload "
                                                                             "retraining."),
          bridge: BridgeMode = typer.Option(BridgeMode.off, help="Also run 'hotdog bridge' on BUCKET."),
          subscription: Optional[str] = typer.Option(None, help="With --bridge pubsub: projects/P/subscriptions/S."),
          prefix: str = typer.Option("", help="Only objects under this name prefix retrain (the bridge's "
                                              "filter, and what retrain-on-upload accepts from any event)."),
          model_server: bool = typer.Option(False, help="Also serve the deployments' registry (WORKDIR/training) "
                                                        "with 'hotdog serve-model': each blessed retrain is served "
                                                        "without a restart."),
          model_port: int = typer.Option(SERVER.port, help="Port of that model server on 127.0.0.1."),
          runs_in: RunsIn = typer.Option(RunsIn.worker, help="What starts the deployments' runs: a process "
                                                             "worker on work pool 'hotdog', or one process serving "
                                                             "them (no worker poll, no 'prefect' command per run: "
                                                             "runs start seconds sooner).")):
    """Start a local Prefect server, the deployments and what runs them (a worker on work pool +
    queue, or a serving process), and optionally the bridge and a model server."""
    from flows import serve as stack
    from tasks import experiment as experiments
    from tasks import settings

    def main():
        root = workdir or settings.default_workdir()
        source = data or settings.default_source()
        if source is None:
            raise HotdogInputError("no image data for the 'manual' deployment: pass --data DIR, set HOTDOG_DATA, "
                                   "or run 'hotdog data fetch' first")
        bridge_args = None
        if bridge is not BridgeMode.off:
            if bridge is BridgeMode.pubsub and not subscription:
                raise HotdogInputError("--bridge pubsub needs --subscription projects/P/subscriptions/S")
            bridge_args = ["--bucket", bucket, "--prefix", prefix, "--workdir", root, "--api-url", stack.api_url(port),
                           *(["--subscription", subscription] if bridge is BridgeMode.pubsub else [])]
        serving = (["--workdir", os.path.join(root, "training"), "--port", str(model_port)] if model_server
                   else None)
        return stack.start(state_dir or settings.stack_dir(root), port, {
            "HOTDOG_DATA": source, "HOTDOG_WORKDIR": root, "HOTDOG_TRAINING_DIR": os.path.join(root, "training"),
            "HOTDOG_IMAGES": images or experiments.load().judged(source), "HOTDOG_BUCKET": bucket,
            "HOTDOG_PREFIX": prefix, "HOTDOG_BACKEND": backend, "HOTDOG_BACKBONE": backbone,
            "HOTDOG_EPOCHS": str(epochs), "HOTDOG_MIN_ACCURACY": str(min_accuracy),
            "HOTDOG_MAX_REGRESSION": str(max_regression)}, bridge_args, serving, runs_in)

    url = _fail_cleanly(main)
    watching = f"; bridge on gs://{bucket}/{prefix} ({bridge.value})" if bridge is not BridgeMode.off else ""
    watching += f"; model server on http://127.0.0.1:{model_port}" if model_server else ""
    runner = "worker on pool 'hotdog'" if runs_in is RunsIn.worker else "deployments served"
    typer.echo(f"Prefect API at {url} (UI: {url[:-4]}); {runner}{watching}. Then:\n"
               f"  export PREFECT_API_URL={url}\n  prefect deployment run 'hotdog-run/manual'")


@app.command()
def stop(state_dir: Optional[str] = typer.Option(None, help="As given to 'hotdog serve'."),
         workdir: Optional[str] = typer.Option(None, help="Work folder (default: $HOTDOG_WORKDIR or data/).")):
    """Stop what 'hotdog serve' started: the bridge, the model server, the worker, then the server."""
    from flows import serve as stack
    from tasks import settings

    stopped = stack.stop(state_dir or settings.stack_dir(workdir or settings.default_workdir()))
    typer.echo(f"stopped: {', '.join(stopped) or 'nothing was running'}")


@app.command()
def bridge(bucket: str = typer.Option(..., help="The watched bucket (no gs://)."),
           subscription: Optional[str] = typer.Option(
               None, help="Pub/Sub subscription to the bucket's notifications, projects/P/subscriptions/S; "
                          "without it the bridge polls the bucket."),
           prefix: str = typer.Option("", help="Only objects whose name starts with this."),
           suffix: List[str] = typer.Option([".tfrecord", ".tfrecord.gz"], help="Accepted name endings."),
           max_bytes: int = typer.Option(2 * 2**30, help="Larger objects are skipped."),
           interval: float = typer.Option(2.0, help="Polling mode: seconds between listings."),
           from_start: bool = typer.Option(False, help="Polling mode: also emit objects present at first start."),
           ledger: Optional[str] = typer.Option(None, help="Durable record (default: WORKDIR/prefect/"
                                                          "bridge-BUCKET.sqlite)."),
           api_url: Optional[str] = typer.Option(None, help="Prefect API (default: $PREFECT_API_URL or "
                                                           "http://127.0.0.1:4200/api)."),
           workdir: Optional[str] = typer.Option(None, help="Work folder (default: $HOTDOG_WORKDIR or data/).")):
    """Post a Prefect gcs.object.finalized event for each new object in BUCKET (runs until stopped)."""
    import logging
    import signal
    import threading

    from tasks import gcs_bridge, settings
    from tasks.gcs_events import UploadFilter
    from tasks.upload_ledger import UploadLedger

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stop_event = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop_event.set())
    record = UploadLedger(ledger or os.path.join(settings.stack_dir(workdir or settings.default_workdir()),
                                                 f"bridge-{bucket}.sqlite"))
    events = gcs_bridge.PrefectEvents(api_url or os.environ.get("PREFECT_API_URL", "http://127.0.0.1:4200/api"))
    worker = gcs_bridge.Bridge(UploadFilter(bucket, prefix, tuple(suffix), max_bytes), record, events)

    def main():
        if subscription:
            gcs_bridge.run_pubsub(worker, subscription, stop_event)
        else:
            gcs_bridge.run_polling(worker, interval, stop_event, from_start)

    try:
        _fail_cleanly(main)
    finally:
        typer.echo(f"bridge stopped; ledger {record.path}: {json.dumps(record.counts())}")
        events.close()
        record.close()


airflow_app = typer.Typer(help="A local Apache Airflow (127.0.0.1, SQLite) for --backend airflow.",
                          no_args_is_help=True)
app.add_typer(airflow_app, name="airflow")


@airflow_app.command("start")
def airflow_start(workdir: str = typer.Option(..., help="Training work folder the DAG trains in (absolute or "
                                                         "relative to here)."),
                  home: Optional[str] = typer.Option(None, help="AIRFLOW_HOME (default: WORKDIR/airflow)."),
                  port: int = typer.Option(8080, help="Webserver/REST API port on 127.0.0.1."),
                  schedule: Optional[str] = typer.Option(None, help="Cron schedule of the DAG (default: none, "
                                                                    "Prefect schedules); the original: '0 */2 * * *'."),
                  backbone: str = typer.Option(DEFAULTS.backbone, help="As 'hotdog train'."),
                  strategy: str = typer.Option(DEFAULTS.strategy, help="As 'hotdog train'."),
                  image_size: Optional[int] = typer.Option(DEFAULTS.image_size, help="As 'hotdog train'."),
                  epochs: int = typer.Option(DEFAULTS.epochs, help="As 'hotdog train'."),
                  min_accuracy: float = typer.Option(DEFAULTS.min_accuracy, help="As 'hotdog train'."),
                  max_regression: float = typer.Option(DEFAULTS.max_regression, help="As 'hotdog train'.")):
    """Start scheduler + webserver from the Airflow environment (created on first use, ~3.5 GB); with
    one of them still running, start the other (same options)."""
    from tasks import airflow_local, training

    root = os.path.abspath(workdir)
    settings = training.TrainSettings(backbone=backbone, strategy=strategy, image_size=image_size, epochs=epochs,
                                      min_accuracy=min_accuracy, max_regression=max_regression)
    info = _fail_cleanly(lambda: airflow_local.start(home or os.path.join(root, "airflow"), port, root, settings,
                                                     schedule))
    secret = ("$HOTDOG_AIRFLOW_PASSWORD" if os.environ.get("HOTDOG_AIRFLOW_PASSWORD")
              else f"$(cat {home or os.path.join(root, 'airflow')}/admin-password)")
    typer.echo(f"Airflow API at {info['url']} (UI: {info['url'][:-7]}), DAG 'hotdog' on {root}. Then:\n"
               f"  export HOTDOG_AIRFLOW_URL={info['url']} HOTDOG_AIRFLOW_USER={info['user']} "
               f"HOTDOG_AIRFLOW_PASSWORD={secret}\n"
               f"  hotdog train --backend airflow --workdir {root} --backbone {backbone} ...")


@airflow_app.command("stop")
def airflow_stop(workdir: Optional[str] = typer.Option(None, help="As given to 'hotdog airflow start'."),
                 home: Optional[str] = typer.Option(None, help="As given to 'hotdog airflow start'.")):
    """Stop the scheduler, then the webserver."""
    from tasks import airflow_local

    if not (home or workdir):
        typer.echo("error: give --workdir or --home", err=True)
        raise typer.Exit(2)
    stopped = airflow_local.stop(home or os.path.join(os.path.abspath(workdir), "airflow"))
    typer.echo(f"stopped: {', '.join(stopped) or 'nothing was running'}")


def main() -> None:
    app(prog_name="hotdog")


if __name__ == "__main__":
    sys.exit(main())
