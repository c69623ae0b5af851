"""Training noise: the spread of each step's verdict across seeds, and whether the shift a step
brings exceeds it."""
from __future__ import annotations

import numpy as np

BEYOND = 2.0  # a shift counts as beyond training noise when |mean| > BEYOND x its sd across seeds


def across_seeds(means: dict[str, list[dict[str, float]]], seeds: int) -> dict:
    """``means``: step -> one {class: mean probability} per seed whose model was pushed, in seed
    order. Returns per step and class the mean and sd across seeds (n), and per later step the
    shift from the first step, paired by seed, with its sd and whether it is beyond noise."""
    steps = list(means)
    stats = {"seeds": seeds, "rule": f"|shift| > {BEYOND:g} sd of the shift across seeds", "steps": {}, "shifts": {}}
    for step, rows in means.items():
        stats["steps"][step] = {"n": len(rows), "classes": {
            c: {"mean": float(np.mean([r[c] for r in rows])), "sd": _sd([r[c] for r in rows])}
            for c in (rows[0] if rows else {})}}
    first = means[steps[0]] if steps else []
    for step in steps[1:]:
        pairs = list(zip(first, means[step])) if len(first) == len(means[step]) == seeds else []
        if not pairs:
            continue  # a seed without a model at either step: no pairing
        stats["shifts"][step] = {}
        for c in first[0]:
            diffs = [b[c] - a[c] for a, b in pairs]
            mean, sd = float(np.mean(diffs)), _sd(diffs)
            stats["shifts"][step][c] = {"mean": mean, "sd": sd, "beyond_noise": bool(abs(mean) > BEYOND * sd)}
    return stats


def _sd(values: list[float]) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def markdown(stats: dict) -> list[str]:
    """Report lines: a table of mean +- sd per step and class, and the shifts."""
    steps = stats["steps"]
    classes = next((list(s["classes"]) for s in steps.values() if s["classes"]), [])
    lines = ["", f"## Across {stats['seeds']} seeds", "",
             "Mean probability over the judged images, mean ± sd across training seeds (n = seeds whose model was "
             "pushed).", "", "| step | n | " + " | ".join(classes) + " |", "|---|---|" + "---|" * len(classes)]
    for step, row in steps.items():
        cells = [f"{row['classes'][c]['mean']:.1%} ± {row['classes'][c]['sd']:.1%}" if c in row["classes"] else "-"
                 for c in classes]
        lines.append(f"| {step} | {row['n']} | " + " | ".join(cells) + " |")
    if stats["shifts"]:
        first = next(iter(steps))
        lines += ["", f"Shift from `{first}`, paired by seed (mean ± sd; **beyond noise**: {stats['rule']}):", "",
                  "| step | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
        for step, shift in stats["shifts"].items():
            cells = [f"{shift[c]['mean']:+.1%} ± {shift[c]['sd']:.1%}" + (" **beyond noise**" if shift[c]["beyond_noise"]
                                                                        else "") for c in classes]
            lines.append(f"| {step} | " + " | ".join(cells) + " |")
    return lines
