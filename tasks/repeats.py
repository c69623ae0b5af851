"""Training noise: the spread of each step's verdict across seeds, and whether the shift a step
brings exceeds it."""
from __future__ import annotations

import numpy as np

BEYOND = 2.0  # a shift counts as beyond training noise when |mean| > BEYOND x its sd across seeds


def across_seeds(means: dict[str, dict[int, dict[str, float]]], seeds: int) -> dict:
    """``means``: step -> seed -> {class: mean probability}, for the seeds whose model of that
    step was pushed. Returns per step and class the mean and sd across seeds (n), and per later
    step the shift from the first step over the seeds that have a model at both (n), with its sd
    and whether it is beyond noise (at least 2 such seeds)."""
    steps = list(means)
    stats = {"seeds": seeds, "rule": f"|shift| > {BEYOND:g} sd of the shift across seeds", "steps": {}, "shifts": {}}
    for step, by_seed in means.items():
        rows = list(by_seed.values())
        stats["steps"][step] = {"n": len(rows), "classes": {
            c: {"mean": float(np.mean([r[c] for r in rows])), "sd": _sd([r[c] for r in rows])}
            for c in (rows[0] if rows else {})}}
    first = means[steps[0]] if steps else {}
    for step in steps[1:]:
        pairs = [(first[seed], row) for seed, row in means[step].items() if seed in first]
        if len(pairs) < 2:
            continue  # one pair has no spread to compare the shift with
        shift = {"n": len(pairs), "classes": {}}
        for c in pairs[0][0]:
            diffs = [b[c] - a[c] for a, b in pairs]
            mean, sd = float(np.mean(diffs)), _sd(diffs)
            shift["classes"][c] = {"mean": mean, "sd": sd, "beyond_noise": bool(abs(mean) > BEYOND * sd)}
        stats["shifts"][step] = shift
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
        lines += ["", f"Shift from `{first}`, paired by seed over the n seeds with a model at both steps (mean ± "
                      f"sd; **beyond noise**: {stats['rule']}):", "",
                  "| step | n | " + " | ".join(classes) + " |", "|---|---|" + "---|" * len(classes)]
        for step, shift in stats["shifts"].items():
            cells = [f"{shift['classes'][c]['mean']:+.1%} ± {shift['classes'][c]['sd']:.1%}"
                     + (" **beyond noise**" if shift["classes"][c]["beyond_noise"] else "") for c in classes]
            lines.append(f"| {step} | {shift['n']} | " + " | ".join(cells) + " |")
    return lines
