"""Prefect flow ``build-datasets``: build the named data sets and publish their cards."""
from __future__ import annotations

import time

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from flows.common import forward_task_logs, report, retry_transient_io
from tasks import dataset_config, datasets, inputs, runners


@task(name="beam-build-datasets", retries=2, retry_delay_seconds=10, retry_condition_fn=retry_transient_io)
def datasets_job(source: str, out: str, config: str | None, names: list[str] | None, compat: str | None,
                 shards: int, gzip: bool, runner: str, workers: int, dask_address: str | None,
                 dataflow: runners.Dataflow | None) -> dict:
    specs = dataset_config.select(dataset_config.load_config(config), names)
    with runners.beam_options(runner, workers, dask_address, dataflow) as options, forward_task_logs():
        if compat == "original":
            return datasets.build_original(source, specs, out, options)
        return datasets.build_from_ingested(source, specs, out, shards, gzip, options)


@flow(name="build-datasets")
def build_datasets(source: str, out: str, config: str | None = None, names: list[str] | None = None,
                   compat: str | None = None, shards: int = 1, gzip: bool = False, runner: str = "direct",
                   workers: int = 1, dask_address: str | None = None,
                   dataflow: runners.Dataflow | None = None) -> dict:
    """Build data sets from an ingestion at ``source`` (or a plain folder tree with compat='original')."""
    inputs.check_datasets(source, config, names, compat, shards, runner, workers, dask_address, dataflow, out)
    started = time.monotonic()
    cards = datasets_job(source, out, config, names, compat, shards, gzip, runner, workers, dask_address, dataflow)
    report("data sets: %s examples (%.1f s) -> %s", ", ".join(f"{name} {card['examples']}" for name, card in cards.items()),
           time.monotonic() - started, out)
    create_markdown_artifact(key="dataset-cards",
                             markdown="\n".join(datasets.card_markdown(card) for card in cards.values()))
    return cards
