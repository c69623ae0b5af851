"""Score a folder of images with pushed models: per-image CSV, summary with bootstrap
intervals, bar chart and Markdown report, labelled with the class names the models carry.

Scoring runs each model (:class:`tasks.serving.scorer.Scorer`: its TFLite copy, else its
``serving_default`` signature) on serialized tf.Examples holding only ``image``, in batches.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import os
import time

import numpy as np

from tasks import class_names, fs, images, inputs, tfrecords
from tasks.errors import HotdogInputError

log = logging.getLogger("hotdog.verdict")
BOOTSTRAP_SAMPLES = 2000
DEFAULT_TITLE = "Verdict"


def load_images(images_dir: str) -> tuple[list[str], list[bytes], list[dict]]:
    """Every decodable image under ``images_dir`` (sorted) and the files skipped, with reasons."""
    inputs.folder(images_dir, "images folder")
    uris = [u for u in fs.list_files(images_dir) if not images.is_system_file(u)]
    blobs = [fs.read_bytes(u) for u in uris]
    names, kept, skipped = [], [], []
    for uri, data, check in zip(uris, blobs, images.inspect_images(blobs)):
        rel = uri[len(images_dir.rstrip("/")) + 1:]
        if check.reason:
            skipped.append({"path": rel, "reason": check.reason})
        else:
            names.append(rel)
            kept.append(data)
    if not kept:
        raise HotdogInputError(f"no decodable image in {images_dir}")
    return names, kept, skipped


def score(model_dir: str, blobs: list[bytes], batch_size: int = 64) -> tuple[np.ndarray, float]:
    """Softmax [N, classes] of the model (label order, :class:`tasks.serving.scorer.Scorer`) and images/s."""
    from tasks.serving.scorer import Scorer

    inputs.saved_model(model_dir)
    scorer = Scorer(model_dir)
    examples = [tfrecords.image_example(b) for b in blobs]
    scorer(examples[:1])  # trace once outside the timing
    started = time.perf_counter()
    outputs = [scorer(examples[i:i + batch_size]) for i in range(0, len(examples), batch_size)]
    return np.concatenate(outputs), len(blobs) / (time.perf_counter() - started)


def bootstrap_interval(values: np.ndarray, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (1-D)."""
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (BOOTSTRAP_SAMPLES, len(values)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def summarize(name: str, probabilities: np.ndarray, classes: list[str]) -> dict:
    """Per class (label order): mean probability and its 95 % bootstrap interval; the verdict is
    the class of the highest mean."""
    scores = {}
    for i, cls in enumerate(classes):
        low, high = bootstrap_interval(probabilities[:, i], seed=i)
        scores[cls] = {"mean": float(probabilities[:, i].mean()), "ci95": [low, high]}
    verdict = classes[int(np.argmax([scores[c]["mean"] for c in classes]))]
    return {"model": name, "images": int(probabilities.shape[0]), "scores": scores, "verdict": verdict}


def run_verdict(models: dict[str, str], images_dir: str, out: str, title: str = DEFAULT_TITLE,
                reference: dict | None = None, repeats: dict | None = None) -> dict:
    """Score ``images_dir`` with each model {name: SavedModel dir}; write the report files into ``out``.

    ``reference``: numbers to print beside ours, ``{"label": str, "models": {model: {class: p}}}``;
    ``repeats``: the spread across seeds (:func:`tasks.repeats.across_seeds`) to report.
    The models must share one class list (HotdogInputError naming both otherwise)."""
    inputs.check_verdict(models, images_dir)
    names, blobs, skipped = load_images(images_dir)
    log.info("scoring %d images with %d model(s)", len(blobs), len(models))
    rows, summary = [], {"title": title, "images_dir": images_dir, "images": len(blobs), "skipped": skipped,
                         "classes": None, "reference": reference, "repeats": repeats, "models": []}
    for model_name, model_dir in models.items():
        probabilities, rate = score(model_dir, blobs)
        classes = class_names.of_model(model_dir, probabilities.shape[1])
        if summary["classes"] is None:
            summary["classes"], first = classes, model_name
        elif classes != summary["classes"]:
            raise HotdogInputError(f"model {model_name!r} ({model_dir}) has classes {classes} but model {first!r} has "
                                   f"{summary['classes']}: one report compares models of one class list")
        entry = summarize(model_name, probabilities, classes)
        entry.update(model_dir=model_dir, images_per_second=round(rate, 1))
        lineage = model_dir.rstrip("/") + ".lineage.json"
        if fs.exists(lineage):
            entry["lineage"] = json.loads(fs.read_bytes(lineage))
        summary["models"].append(entry)
        log.info("%s: %s (%.0f images/s)", model_name,
                 ", ".join(f"{c} {score['mean']:.1%}" for c, score in entry["scores"].items()), rate)
        rows += [{"model": model_name, "path": n, **{c: f"{p[i]:.6f}" for i, c in enumerate(classes)},
                  "predicted": classes[int(np.argmax(p))]} for n, p in zip(names, probabilities)]
    _write_outputs(out, rows, summary)
    return summary


def combine_verdicts(models: dict[str, str], parts: dict[str, str], images_dir: str, out: str,
                     title: str = DEFAULT_TITLE, reference: dict | None = None, repeats: dict | None = None
                     ) -> dict | None:
    """What :func:`run_verdict` would write and return for ``models``, from verdicts already written
    (``parts``: {model name: the folder of a verdict of that model alone on ``images_dir``}), without
    scoring again. None, writing nothing, unless each part holds exactly its model and all of them
    scored the same files of ``images_dir`` with the same classes."""
    entries, rows, scored = [], [], None
    for name, model_dir in models.items():
        folder = parts.get(name)
        try:
            part = json.loads(fs.read_bytes(fs.join(folder, "summary.json"))) if folder else None
            predictions = (list(csv.DictReader(io.StringIO(fs.read_bytes(fs.join(folder, "predictions.csv"))
                                                           .decode("utf-8")))) if part else [])
        except (OSError, ValueError) as err:
            log.info("verdict of %s in %s does not read (%s): scoring again", name, folder, err)
            return None
        if not part or [(e["model"], e["model_dir"]) for e in part["models"]] != [(name, model_dir)]:
            return None
        seen = (part["images_dir"], part["images"], part["classes"], part["skipped"], [r["path"] for r in predictions])
        if seen[0] != images_dir or seen[1] != len(predictions) or (scored is not None and seen != scored):
            log.info("verdict of %s in %s scored other images: scoring again", name, folder)
            return None
        scored = seen
        entries += part["models"]
        rows += predictions
    if scored is None:
        return None
    _, count, classes, skipped, _ = scored
    summary = {"title": title, "images_dir": images_dir, "images": count, "skipped": skipped, "classes": classes,
               "reference": reference, "repeats": repeats, "models": entries}
    _write_outputs(out, rows, summary)
    return summary


def _write_outputs(out: str, rows: list[dict], summary: dict) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["model", "path", *summary["classes"], "predicted"])
    writer.writeheader()
    writer.writerows(rows)
    fs.write_bytes_atomic(fs.join(out, "predictions.csv"), buffer.getvalue().encode())
    fs.write_bytes_atomic(fs.join(out, "verdict.png"), chart(summary))
    fs.write_bytes_atomic(fs.join(out, "report.md"), report(summary).encode())
    fs.write_bytes_atomic(fs.join(out, "summary.json"),
                          (json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode())


def chart(summary: dict) -> bytes:
    """Grouped bars: mean probability per class per model, with 95 % intervals (PNG bytes)."""
    classes = summary["classes"]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = summary["models"]
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for k, entry in enumerate(models):
        means = [entry["scores"][c]["mean"] for c in classes]
        errors = [[m - entry["scores"][c]["ci95"][0] for m, c in zip(means, classes)],
                  [entry["scores"][c]["ci95"][1] - m for m, c in zip(means, classes)]]
        ax.bar(np.arange(len(classes)) + k * width, means, width, yerr=errors, capsize=3, label=entry["model"])
    ax.set_xticks(np.arange(len(classes)) + width * (len(models) - 1) / 2, classes)
    ax.set_ylabel(f"mean probability over {summary['images']} images")
    ax.set_ylim(0, 1)
    ax.set_title(summary["title"])
    ax.legend()
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def report(summary: dict, chart_path: str | None = "verdict.png") -> str:
    """Markdown: one row per model (mean and 95 % CI per class), the reference numbers beside,
    the ``chart_path`` image (relative to the report; None leaves it out)."""
    classes, reference = summary["classes"], summary.get("reference")
    header = f" {reference['label']} (" + " / ".join(classes) + ") |" if reference else ""
    lines = [f"# {summary['title']}", "",
             f"{summary['images']} images from `{summary['images_dir']}` scored by each model "
             f"(mean softmax, 95 % bootstrap interval).", "",
             "| model | " + " | ".join(classes) + " | verdict |" + header,
             "|---|" + "---|" * (len(classes) + 1 + bool(reference))]
    for entry in summary["models"]:
        cells = [f"{s['mean']:.1%} [{s['ci95'][0]:.1%}, {s['ci95'][1]:.1%}]" for s in entry["scores"].values()]
        row = f"| {entry['model']} | " + " | ".join(cells) + f" | {entry['verdict']} |"
        if reference:
            values = reference["models"].get(entry["model"])
            row += (" " + " / ".join(f"{values[c]:.1%}" for c in classes) if values else " -") + " |"
        lines.append(row)
    if summary.get("repeats"):
        from tasks import repeats

        lines += repeats.markdown(summary["repeats"])
    lines += ["", f"![verdict]({chart_path})", ""] if chart_path else [""]
    for entry in summary["models"]:
        lineage = entry.get("lineage")
        lines.append(f"- `{entry['model']}`: `{entry['model_dir']}`, {entry['images_per_second']} images/s")
        if lineage:
            lines.append(f"  - trained on {', '.join(lineage['data_sets'])} "
                         f"({lineage['examples_fingerprint']}); {lineage['parameters']}; "
                         f"code {lineage['code_version']}; eval accuracy {lineage.get('accuracy')}")
    if summary["skipped"]:
        lines += ["", f"Skipped {len(summary['skipped'])} undecodable file(s): "
                  + ", ".join(f"{s['path']} ({s['reason']})" for s in summary["skipped"])]
    return "\n".join(lines) + "\n"
