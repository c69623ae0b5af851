"""Ask a trained model about images: the top class and every class's probability per image,
names from the model; no report, no bootstrap.

Images go through the model (:class:`tasks.serving.scorer.Scorer`) in batches of serialized
tf.Examples holding ``image``; the class names are the model's stored ones.
"""
from __future__ import annotations

import csv
import io
import json

from tasks import class_names, fs, images, inputs, tfrecords, training
from tasks.errors import HotdogInputError

FORMATS = ("table", "jsonl", "csv")


def latest_model(workdir: str) -> str:
    """The work folder's latest blessed (pushed) model."""
    versions = training.pushed_versions(workdir)
    if not versions:
        raise HotdogInputError(f"{workdir} holds no pushed model ({training.paths(workdir)['registry']} is empty): "
                               f"train one first, or pass --model DIR")
    return fs.join(training.paths(workdir)["registry"], versions[-1])


def expand(paths: list[str]) -> list[str]:
    """Files as given and every file under each folder (sorted), local or gs://; a missing path
    raises HotdogInputError."""
    found = []
    for path in paths:
        if not fs.exists(path):
            raise HotdogInputError(f"no such file or folder: {path}")
        fsys, local = fs.filesystem(path)
        if fsys.isdir(local):
            found += [u for u in fs.list_files(path) if not images.is_system_file(u)]
        else:
            found.append(path)
    return found


def predict(paths: list[str], model_dir: str, batch_size: int = 64) -> tuple[list[str], list[dict]]:
    """The model's class names and one row per image, in order: ``{path, top, probabilities}``
    or ``{path, error}`` for a file that is not a decodable image."""
    inputs.saved_model(model_dir)
    uris = expand(paths)
    blobs = [fs.read_bytes(uri) for uri in uris]
    checks = images.inspect_images(blobs)
    rows = [{"path": uri, "error": check.reason + (f" ({check.detail})" if check.detail else "")} if check.reason
            else {"path": uri} for uri, check in zip(uris, checks)]
    good = [i for i, row in enumerate(rows) if "error" not in row]
    if not good:
        return [], rows
    from tasks.serving.scorer import Scorer

    scorer = Scorer(model_dir)
    examples = [tfrecords.image_example(blobs[i]) for i in good]
    scores = [row for k in range(0, len(examples), batch_size) for row in scorer(examples[k:k + batch_size]).tolist()]
    names = class_names.of_model(model_dir, len(scores[0]))
    for i, probabilities in zip(good, scores):
        top = max(range(len(names)), key=probabilities.__getitem__)
        rows[i].update(top=names[top], probabilities=dict(zip(names, probabilities)))
    return names, rows


def render(names: list[str], rows: list[dict], form: str) -> str:
    """``rows`` as a table, JSON lines or CSV (one line per image, errors included)."""
    if form == "jsonl":
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    if form == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["path", "top", *names, "error"])
        for row in rows:
            probabilities = row.get("probabilities", {})
            writer.writerow([row["path"], row.get("top", ""), *(f"{probabilities[n]:.6f}" if probabilities else ""
                                                                 for n in names), row.get("error", "")])
        return buffer.getvalue()
    width = max(len(row["path"]) for row in rows)
    lines = []
    for row in rows:
        if "error" in row:
            lines.append(f"{row['path']:<{width}}  error: {row['error']}")
        else:
            shares = "  ".join(f"{n} {p:.1%}" for n, p in row["probabilities"].items())
            lines.append(f"{row['path']:<{width}}  {row['top']}  ({shares})")
    return "\n".join(lines) + "\n"
