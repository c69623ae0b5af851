"""Prefect flow ``hotdog-run``: the end-to-end main job behind ``make run``.

ingest -> data sets -> train baseline -> verdict -> add taco_bias (continuous training)
-> train -> verdict -> add sandwich_bias -> train -> verdict -> final report comparing the
three models with the original project's numbers.
"""
from __future__ import annotations

from prefect import flow

from flows.common import report
from flows.datasets_flow import build_datasets
from flows.ingest_flow import ingest_images
from flows.train_flow import train
from flows.verdict_flow import verdict
from tasks import fs, inputs, training, work_lock

STEPS = ("baseline", "taco_bias", "sandwich_bias")


@flow(name="hotdog-run")
def hotdog_run(source: str, workdir: str, review: str | None = None, images: str | None = None,
               backbone: str = "efficientnet_lite0", strategy: str = "fast", epochs: int = 20,
               image_size: int | None = None, min_accuracy: float = 0.55, max_regression: float = 0.01,
               workers: int = 1, max_per_category: int | None = None, fresh: bool = False,
               fail_if_busy: bool = False) -> dict:
    """Run the whole demo on ``source``; outputs under ``workdir`` (intermediary/, processed/,
    run/training/, verdict/). The hot dogs default to ``source``/hot dog.

    run/training/ is the demo's own work folder (the deployments train in training/). It must
    start empty, so the three models retrace the original's continuous training: baseline,
    then + taco_bias, then + sandwich_bias; if it holds pushed models, only ``fresh`` lets the
    run delete them (HotdogInputError otherwise). Each bias set
    adds 150 examples to ~1,000, and the Evaluator compares the models on the grown eval
    split, where one example is 0.2-0.3 points of accuracy: the demo lets a model through
    that is at most ``max_regression`` (1 point) below the previous one; ``hotdog train``
    keeps the original's strict "no regression". ``max_per_category`` caps the images
    ingested per category (a quick demo).
    """
    ingested, processed = fs.join(workdir, "intermediary"), fs.join(workdir, "processed")
    training_dir, verdicts = training.demo_dir(workdir), fs.join(workdir, "verdict")
    images = images or fs.join(source, "hot dog")
    inputs.check_run(source, images, review, workers)
    with work_lock.held(training_dir, "run", wait=not fail_if_busy):
        training.check_can_start_over(training_dir, fresh)
        summary = ingest_images(source, ingested, review=review, max_per_category=max_per_category,
                                workers=workers)
        cards = build_datasets(ingested, processed, workers=workers)
        training.start_over(training_dir)
        models, outcomes = {}, {}
        for number, step in enumerate(STEPS, 1):
            report("step %d/%d: %s", number, len(STEPS), " + ".join(STEPS[:number]))
            result = train([fs.join(processed, step)], training_dir, backbone=backbone, strategy=strategy,
                           epochs=epochs, image_size=image_size, min_accuracy=min_accuracy,
                           max_regression=max_regression)
            outcomes[step] = {k: result[k] for k in ("pushed_model", "reason", "metrics")}
            if result["pushed_model"]:
                models[step] = result["pushed_model"]
                verdict({step: result["pushed_model"]}, images, fs.join(verdicts, step))
            else:
                report("%s: no new model (%s); it is left out of the report", step, result["reason"])
    final = verdict(models, images, fs.join(verdicts, "final")) if models else None
    if final:
        report("final report: %s", fs.join(verdicts, "final", "report.md"))
    return {"ingested": ingested, "processed": processed, "totals": summary["totals"],
            "datasets": {name: card["examples"] for name, card in cards.items()}, "training": outcomes,
            "verdict": {e["model"]: {c: round(e[c]["mean"], 4) for c in ("food", "sandwich", "taco")}
                        for e in (final or {"models": []})["models"]},
            "report": fs.join(verdicts, "final", "report.md") if final else None}
