"""Prefect flow ``hotdog-run``: an experiment end to end, the job behind ``make run``.

ingest -> data sets -> for each step of the experiment: add its data sets to the data root
(continuous training), train, judge the images -> final report comparing the steps' models
(from the steps' verdicts, not scored again), with the experiment's reference numbers beside;
with ``repeats`` > 1, every step is trained once per seed and the report adds the spread
across seeds (tasks.repeats).
"""
from __future__ import annotations

from prefect import flow

from flows.common import report
from flows.datasets_flow import build_datasets
from flows.ingest_flow import ingest_images
from flows.train_flow import train
from flows.verdict_flow import verdict
from tasks import experiment as experiments
from tasks import fs, inputs, repeats as spread, training, work_lock
from tasks.errors import HotdogInputError


@flow(name="hotdog-run")
def hotdog_run(source: str, workdir: str, experiment: str | None = None, review: str | None = None,
               images: str | None = None, backbone: str | None = None, strategy: str | None = None,
               epochs: int | None = None, min_accuracy: float | None = None, max_regression: float | None = None,
               repeats: int | None = None, workers: int = 1, max_per_category: int | None = None,
               fresh: bool = False, fail_if_busy: bool = False) -> dict:
    """Run the experiment file ``experiment`` (default: data/experiments/hotdog.yaml) on the image
    tree ``source``; outputs under ``workdir`` (intermediary/, processed/, run/training/, verdict/).
    Options given here (not None) override the file's.

    run/training/ (and run/training-<seed> for further repeats) is the run's own work folder
    (the deployments train in training/). It must start empty, so the models retrace the
    experiment's continuous training; if it holds pushed models, only ``fresh`` lets the run
    delete them (HotdogInputError otherwise). ``max_per_category`` caps the images ingested per
    category (a quick run).
    """
    plan = experiments.load(experiment)
    settings = plan.train.replace(backbone=backbone, strategy=strategy, epochs=epochs, min_accuracy=min_accuracy,
                                  max_regression=max_regression)
    training.check_settings(settings)
    count = repeats or plan.repeats
    if count < 1:
        raise HotdogInputError(f"--repeats must be >= 1, got {count}")
    judged = images or plan.judged(source)
    inputs.check_run(source, judged, review or plan.review, workers)
    ingested, processed = fs.join(workdir, "intermediary"), fs.join(workdir, "processed")
    verdicts, steps = fs.join(workdir, "verdict"), list(plan.steps)
    folders = [training.demo_dir(workdir, seed) for seed in range(count)]
    with work_lock.held(folders[0], "run", wait=not fail_if_busy):
        for folder in folders:
            training.check_can_start_over(folder, fresh)
        summary = ingest_images(source, ingested, review=review or plan.review, max_per_category=max_per_category,
                                workers=workers)
        cards = build_datasets(ingested, processed, config=plan.datasets_config, names=plan.data_sets(),
                               workers=workers)
        models, outcomes, means = {}, {}, {step: {} for step in steps}
        for seed, folder in enumerate(folders):
            training.start_over(folder)
            for number, step in enumerate(steps, 1):
                report("step %d/%d%s: %s", number, len(steps), f", seed {seed + 1}/{count}" if count > 1 else "",
                       " + ".join(steps[:number]))
                result = train([fs.join(processed, name) for name in plan.steps[step]], folder,
                               backbone=settings.backbone, strategy=settings.strategy, epochs=settings.epochs,
                               image_size=settings.image_size, min_accuracy=settings.min_accuracy,
                               max_regression=settings.max_regression, seed=settings.seed + seed)
                if seed == 0:
                    outcomes[step] = {k: result[k] for k in ("pushed_model", "reason", "metrics")}
                if not result["pushed_model"]:
                    report("%s: no new model (%s); it is left out of the report", step, result["reason"])
                    continue
                out = fs.join(verdicts, step) if seed == 0 else fs.join(verdicts, f"seed-{seed + 1}", step)
                judged_step = verdict({step: result["pushed_model"]}, judged, out, plan.title)
                means[step][seed] = {c: s["mean"] for c, s in judged_step["models"][0]["scores"].items()}
                if seed == 0:
                    models[step] = result["pushed_model"]
    stats = spread.across_seeds(means, count) if count > 1 else None
    final = verdict(models, judged, fs.join(verdicts, "final"), plan.title, plan.reference, stats,
                    scored={step: fs.join(verdicts, step) for step in models}) if models else None
    if final:
        report("final report: %s", fs.join(verdicts, "final", "report.md"))
    return {"experiment": plan.path, "ingested": ingested, "processed": processed, "totals": summary["totals"],
            "datasets": {name: card["examples"] for name, card in cards.items()}, "training": outcomes,
            "classes": final["classes"] if final else None,
            "verdict": {e["model"]: {c: round(s["mean"], 4) for c, s in e["scores"].items()}
                        for e in (final or {"models": []})["models"]},
            "repeats": stats, "report": fs.join(verdicts, "final", "report.md") if final else None}
