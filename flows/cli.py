"""The ``hotdog`` command line: one sub-command per flow."""
from __future__ import annotations

import json
import os
import sys
from enum import Enum
from typing import List, Optional

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

import typer  # noqa: E402

from tasks.errors import HotdogInputError  # noqa: E402

app = typer.Typer(help="hotdog-flows: ingest labelled images, build data sets, train and judge hot dogs.",
                  no_args_is_help=True, pretty_exceptions_enable=False)


class Runner(str, Enum):
    direct = "direct"
    dask = "dask"
    dataflow = "dataflow"


class Compat(str, Enum):
    original = "original"


def _fail_cleanly(fn):
    """Report bad input as one line on stderr with exit code 2 instead of a traceback."""
    try:
        return fn()
    except HotdogInputError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2)


@app.command()
def ingest(source: str = typer.Argument(..., help="Folder-per-category image tree (path or gs://)."),
           out: str = typer.Option(..., "--out", help="Output folder (path or gs://)."),
           review: Optional[str] = typer.Option(None, help="Review manifest JSON: category -> rejected names."),
           max_per_category: Optional[int] = typer.Option(None, help="Accept at most N images per category."),
           max_pixels: int = typer.Option(40_000_000, help="Reject images with more pixels (decompression bombs)."),
           runner: Runner = typer.Option(Runner.direct, help="Beam runner."),
           workers: int = typer.Option(1, help="Worker processes (direct: multi_processing when > 1)."),
           dask_address: Optional[str] = typer.Option(None, help="dask.distributed scheduler for --runner dask.")):
    """Validate, deduplicate and write images as TFRecords + manifest.jsonl + summary.json."""
    from flows.ingest_flow import ingest_images

    summary = _fail_cleanly(lambda: ingest_images(source, out, review, max_per_category, max_pixels,
                                                  runner.value, workers, dask_address))
    typer.echo(json.dumps({"out": out, "files": summary["files"], **summary["totals"]}))


@app.command()
def datasets(source: str = typer.Argument(..., help="An ingest output folder (or a plain tree with --compat)."),
             out: str = typer.Option(..., "--out", help="Output folder: one sub-folder per data set."),
             config: Optional[str] = typer.Option(None, help="Data-set config (default: data/datasets.yaml)."),
             name: Optional[List[str]] = typer.Option(None, "--name", help="Data set(s) to build (default: all)."),
             compat: Optional[Compat] = typer.Option(None, help="'original': reproduce the notebook's TFRecords."),
             shards: int = typer.Option(1, help="Output files per data set."),
             gzip: bool = typer.Option(False, help="GZIP-compress the TFRecords."),
             runner: Runner = typer.Option(Runner.direct, help="Beam runner."),
             workers: int = typer.Option(1, help="Worker processes (direct: multi_processing when > 1)."),
             dask_address: Optional[str] = typer.Option(None, help="dask.distributed scheduler for --runner dask.")):
    """Build named, class-balanced data sets (image + one-hot label) with a data-set card each."""
    from flows.datasets_flow import build_datasets

    cards = _fail_cleanly(lambda: build_datasets(source, out, config, name or None,
                                                 compat.value if compat else None, shards, gzip,
                                                 runner.value, workers, dask_address))
    typer.echo(json.dumps({n: c["examples"] for n, c in cards.items()}))


@app.command()
def run(data: Optional[str] = typer.Option(None, help="Image tree (default: $HOTDOG_DATA or ../shared)."),
        workdir: Optional[str] = typer.Option(None, help="Where outputs go (default: $HOTDOG_WORKDIR or data/)."),
        review: Optional[str] = typer.Option(None, help="Review manifest JSON."),
        workers: int = typer.Option(1, help="Beam worker processes.")):
    """The end-to-end main job: ingest, then build every data set."""
    from flows.run_flow import hotdog_run
    from tasks import settings

    def main():
        return hotdog_run(data or settings.default_source(), workdir or settings.default_workdir(), review,
                          workers=workers)

    result = _fail_cleanly(main)
    typer.echo(json.dumps(result, indent=2))


def main() -> None:
    app(prog_name="hotdog")


if __name__ == "__main__":
    sys.exit(main())
