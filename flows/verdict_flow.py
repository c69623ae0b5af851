"""Prefect flow ``verdict``: score the hot dogs with pushed models and publish the report."""
from __future__ import annotations

import os
import time

from prefect import flow, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact

from flows.common import forward_task_logs, report
from tasks import verdict as verdict_job


@task(name="score-images")
def scoring(models: dict[str, str], images: str, out: str) -> dict:
    with forward_task_logs():
        return verdict_job.run_verdict(models, images, out)


@flow(name="verdict")
def verdict(models: dict[str, str], images: str, out: str) -> dict:
    """Score every image under ``images`` with each {name: SavedModel dir}; report into ``out``."""
    started = time.monotonic()
    summary = scoring(models, images, out)
    classes = verdict_job.CLASSES
    for entry in summary["models"]:
        report("verdict %s: %s on %d images", entry["model"],
               ", ".join(f"{c} {entry[c]['mean']:.1%}" for c in classes), summary["images"])
    report("verdict: report in %.1f s -> %s", time.monotonic() - started, os.path.join(out, "report.md"))
    create_table_artifact(key="verdict-summary", table=[
        {"model": e["model"], **{c: round(e[c]["mean"], 4) for c in classes},
         **{f"{c}_ci95": [round(v, 4) for v in e[c]["ci95"]] for c in classes}, "verdict": e["verdict"]}
        for e in summary["models"]])
    create_markdown_artifact(key="verdict-report", markdown=verdict_job.report(summary, classes))
    if not out.startswith("gs://"):
        create_link_artifact(key="verdict-chart", link=f"file://{os.path.abspath(os.path.join(out, 'verdict.png'))}",
                             link_text="verdict.png")
    return summary
