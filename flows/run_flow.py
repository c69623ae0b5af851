"""Prefect flow ``hotdog-run``: the end-to-end main job behind ``make run``.

Today it ingests the images and builds the data sets; training and the verdict join
it when the TFX pipeline lands (issue 3).
"""
from __future__ import annotations

from prefect import flow, get_run_logger

from flows.datasets_flow import build_datasets
from flows.ingest_flow import ingest_images
from tasks import fs


@flow(name="hotdog-run")
def hotdog_run(source: str, workdir: str, review: str | None = None, runner: str = "direct",
               workers: int = 1) -> dict:
    """Ingest ``source`` into ``workdir``/intermediary, build every data set into ``workdir``/processed."""
    logger = get_run_logger()
    ingested, processed = fs.join(workdir, "intermediary"), fs.join(workdir, "processed")
    summary = ingest_images(source, ingested, review=review, runner=runner, workers=workers)
    cards = build_datasets(ingested, processed, runner=runner, workers=workers)
    for name, card in cards.items():
        logger.info("data set %s: %d examples -> %s", name, card["examples"], fs.join(processed, name))
    return {"ingested": ingested, "processed": processed, "totals": summary["totals"],
            "datasets": {name: card["examples"] for name, card in cards.items()}}
