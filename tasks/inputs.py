"""Checks of each command's input that need neither Beam, TensorFlow nor a Prefect server:
the CLI runs them before it starts anything, and the flows run them before any work, so a
deployment gets the same one-line errors."""
from __future__ import annotations

import json

from tasks import dataset_config, fs, runners
from tasks.errors import HotdogInputError


def folder(uri: str, what: str) -> None:
    if not fs.exists(uri):
        raise HotdogInputError(f"{what} not found: {uri}")
    fsys, path = fs.filesystem(uri)
    if not fsys.isdir(path):
        raise HotdogInputError(f"{what} must be a folder, got a file: {uri}")


def load_review(review: str | None) -> dict[str, set[str]]:
    """Read a review manifest: JSON object category -> list of rejected file names."""
    if not review:
        return {}
    try:
        doc = json.loads(fs.read_bytes(review))
    except FileNotFoundError:
        raise HotdogInputError(f"review manifest not found: {review}") from None
    except json.JSONDecodeError as err:
        raise HotdogInputError(f"review manifest {review} is not valid JSON: {err}") from None
    if not isinstance(doc, dict) or not all(
            isinstance(names, list) and all(isinstance(n, str) for n in names) for names in doc.values()):
        raise HotdogInputError(f"review manifest {review} must map each category to a list of file names")
    return {category: set(names) for category, names in doc.items()}


def check_ingest(source: str, review: str | None, max_pixels: int, runner: str, workers: int,
                 dask_address: str | None, dataflow: runners.Dataflow | None = None, out: str = "") -> None:
    runners.runner_args(runner, workers, dask_address, dataflow)
    runners.check_paths(runner, source=source, out=out)
    if max_pixels < 1:
        raise HotdogInputError(f"--max-pixels must be >= 1, got {max_pixels}")
    folder(source, "source folder")
    load_review(review)


def check_run(source: str, images: str, review: str | None, workers: int) -> None:
    """The end-to-end job's own input: the image tree, the images to judge, the review manifest."""
    runners.runner_args("direct", workers)
    folder(source, "source folder")
    if not fs.exists(images):
        raise HotdogInputError(f"no images to judge: {images} does not exist (pass --images DIR)")
    load_review(review)


def check_datasets(source: str, config: str | None, names: list[str] | None, compat: str | None, shards: int,
                   runner: str, workers: int, dask_address: str | None,
                   dataflow: runners.Dataflow | None = None, out: str = "") -> None:
    if compat is not None and compat not in dataset_config.COMPAT_MODES:
        raise HotdogInputError(f"--compat {compat!r} is not known; the only mode is 'original'")
    if shards < 1:
        raise HotdogInputError(f"--shards must be >= 1, got {shards}")
    runners.runner_args(runner, workers, dask_address, dataflow)
    runners.check_paths(runner, source=source, out=out)
    dataset_config.select(dataset_config.load_config(config), names)
    folder(source, "source folder")


def check_data_sets(data_dirs: list[str]) -> None:
    for data_dir in data_dirs:
        if not fs.exists(fs.join(data_dir, dataset_config.CARD)):
            raise HotdogInputError(f"{data_dir} is not a data set folder (no {dataset_config.CARD}); "
                                   f"build one with 'hotdog datasets'")


def check_add_data(uris: list[str], workdir: str) -> None:
    """``add-data``'s files: TFRecord names; local ones must exist as files."""
    if not workdir:
        raise HotdogInputError("--workdir is required: the work folder whose data root the files join")
    for uri in uris:
        if not uri.rstrip("/").endswith((".tfrecord", ".tfrecord.gz")):
            raise HotdogInputError(f"{uri}: only *.tfrecord or *.tfrecord.gz files are training data (for a data "
                                   f"set folder from 'hotdog datasets', use 'hotdog train --data DIR')")
        if not fs.is_remote(uri):
            fsys, path = fs.filesystem(uri)
            if not fsys.isfile(path):
                raise HotdogInputError(f"{uri}: no such file")


def check_verdict(models: dict[str, str], images: str) -> None:
    if not models:
        raise HotdogInputError("give at least one model (--model DIR)")
    for model_dir in models.values():
        saved_model(model_dir)
    folder(images, "images folder")


def saved_model(model_dir: str) -> None:
    if not fs.exists(fs.join(model_dir, "saved_model.pb")):
        raise HotdogInputError(f"{model_dir} is not a SavedModel folder (no saved_model.pb)")
