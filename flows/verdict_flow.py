"""Prefect flow ``verdict``: score a folder of images with pushed models and publish the report."""
from __future__ import annotations

import os
import time

from prefect import flow, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from flows.common import forward_task_logs, report
from tasks import verdict as verdict_job


@task(name="score-images")
def scoring(models: dict[str, str], images: str, out: str, title: str, reference: dict | None,
            repeats: dict | None, scored: dict[str, str] | None) -> dict:
    with forward_task_logs():
        return ((scored and verdict_job.combine_verdicts(models, scored, images, out, title, reference, repeats))
                or verdict_job.run_verdict(models, images, out, title, reference, repeats))


@flow(name="verdict")
def verdict(models: dict[str, str], images: str, out: str, title: str = verdict_job.DEFAULT_TITLE,
            reference: dict | None = None, repeats: dict | None = None, scored: dict[str, str] | None = None) -> dict:
    """Score every image under ``images`` with each {name: SavedModel dir}; report into ``out``
    (titled ``title``; ``reference`` and ``repeats`` as :func:`tasks.verdict.run_verdict`).
    ``scored``: {name: folder of a verdict of that model alone on ``images``}, reused instead of
    scoring again where they agree (:func:`tasks.verdict.combine_verdicts`)."""
    started = time.monotonic()
    summary = scoring(models, images, out, title, reference, repeats, scored)
    for entry in summary["models"]:
        report("verdict %s: %s on %d images", entry["model"],
               ", ".join(f"{c} {s['mean']:.1%}" for c, s in entry["scores"].items()), summary["images"])
    report("verdict: report in %.1f s -> %s", time.monotonic() - started, os.path.join(out, "report.md"))
    create_table_artifact(key="verdict-summary", table=[
        {"model": e["model"], "class": c, "mean": round(s["mean"], 4), "ci95": [round(v, 4) for v in s["ci95"]],
         "verdict": e["verdict"] == c} for e in summary["models"] for c, s in e["scores"].items()])
    create_markdown_artifact(key="verdict-report", markdown=verdict_job.report(summary))
    if not out.startswith("gs://"):
        create_link_artifact(key="verdict-chart", link=f"file://{os.path.abspath(os.path.join(out, 'verdict.png'))}",
                             link_text="verdict.png")
    return summary
