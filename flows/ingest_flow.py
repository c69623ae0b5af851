"""Prefect flow ``ingest-images``: run the Beam ingestion job and publish its summary."""
from __future__ import annotations

import time

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.common import forward_task_logs, report, retry_transient_io
from tasks import images, ingest, inputs, runners


@task(name="beam-ingest", retries=2, retry_delay_seconds=10, retry_condition_fn=retry_transient_io)
def ingest_job(source: str, out: str, review: str | None, max_per_category: int | None, max_pixels: int,
               runner: str, workers: int, dask_address: str | None, dataflow: runners.Dataflow | None) -> dict:
    with runners.beam_options(runner, workers, dask_address, dataflow) as options, forward_task_logs():
        return ingest.run_ingest(source, out, review, max_per_category, max_pixels, options)


@flow(name="ingest-images")
def ingest_images(source: str, out: str, review: str | None = None, max_per_category: int | None = None,
                  max_pixels: int = images.DEFAULT_MAX_PIXELS, runner: str = "direct", workers: int = 1,
                  dask_address: str | None = None, dataflow: runners.Dataflow | None = None) -> dict:
    """Validate, deduplicate and write the images under ``source`` as TFRecords in ``out``."""
    inputs.check_ingest(source, review, max_pixels, runner, workers, dask_address, dataflow, out)
    started = time.monotonic()
    summary = ingest_job(source, out, review, max_per_category, max_pixels, runner, workers, dask_address,
                         dataflow)
    publish_summary(summary, out)
    report("ingest: %d files in %d categories: %s (%.1f s) -> %s", summary["files"], len(summary["per_category"]),
           ", ".join(f"{count} {outcome}" for outcome, count in summary["totals"].items()),
           time.monotonic() - started, out)
    return summary


def publish_summary(summary: dict, out: str) -> None:
    rows = [{"category": category, **counts} for category, counts in summary["per_category"].items()]
    create_table_artifact(key="ingest-summary", table=rows,
                          description=f"Ingestion of {summary['params']['source']} into {out}")
    totals = ", ".join(f"{k} {v}" for k, v in summary["totals"].items())
    lines = [f"# Ingestion into `{out}`", "", f"{summary['files']} files: {totals}.", "",
             f"Distinct accepted images (sha256): {summary['distinct_accepted_sha256']}; "
             f"cross-category duplicate groups: {len(summary['cross_category_duplicates'])}."]
    if summary["invalid_reasons"]:
        lines += ["", "Invalid files by reason: " + ", ".join(f"{k} {v}" for k, v in summary["invalid_reasons"].items())]
    if summary["categories_without_accepted_images"]:
        lines += ["", "Categories with no accepted image: " + ", ".join(summary["categories_without_accepted_images"])]
    if summary["review_unmatched"]:
        lines += ["", "Review manifest entries matching no file: "
                  + "; ".join(f"{c}: {', '.join(n)}" for c, n in summary["review_unmatched"].items())]
    create_markdown_artifact(key="ingest-report", markdown="\n".join(lines) + "\n")
