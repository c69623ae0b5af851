"""Beam job: ingest a folder-per-category image tree into validated, deduplicated TFRecords.

Every input file gets exactly one manifest outcome:
``accepted``, ``duplicate`` (same sha256 as an earlier file of the same category, the
first in sorted path order wins), ``review_rejected``, ``over_cap`` or ``invalid`` (with
a reason). Output folder (local or gs://)::

    <out>/<category>/part-SSSSS-of-NNNNN.tfrecord   accepted images (see tfrecords.ingested_example)
    <out>/manifest.jsonl                            one JSON object per input file, sorted by path
    <out>/summary.json                              counts, duplicates, shards; written last
"""
from __future__ import annotations

import collections
import dataclasses
import json
import logging
import math
import threading
import time

import apache_beam as beam

from tasks import beam_io, fs, images, staging, tfrecords
from tasks.errors import HotdogInputError

log = logging.getLogger("hotdog.ingest")

MARKER = "summary.json"
MANIFEST = "manifest.jsonl"
SHARD_LIST = "shards.jsonl"  # staging only: the shard files the job wrote
IMAGES_PER_SHARD = 1000
OUTCOMES = ("accepted", "duplicate", "review_rejected", "over_cap", "invalid")
OWNED_PATTERNS = ("*/part-*-of-*.tfrecord", MANIFEST)


@dataclasses.dataclass(frozen=True)
class SourceFile:
    """One input file: ``rel`` is its path under the source root ('<category>/<name>')."""

    uri: str
    rel: str
    category: str | None


@dataclasses.dataclass(frozen=True)
class Listing:
    files: list[SourceFile]
    categories: list[str]  # every category folder, including empty ones


def list_source(source: str) -> Listing:
    """List ``source`` (local or gs://): categories are its first-level folders."""
    fsys, root = fs.filesystem(source)
    if not fsys.exists(root):
        raise HotdogInputError(f"source folder not found: {source}")
    if not fsys.isdir(root):
        raise HotdogInputError(f"source must be a folder of category folders, got a file: {source}")
    root = root.rstrip("/")
    entries = fsys.find(root, withdirs=True, detail=True)
    categories, files = set(), []
    for path, info in sorted(entries.items()):
        rel = path[len(root) + 1:]
        if not rel or rel.split("/", 1)[0].startswith(staging.STAGING_PREFIX):
            continue
        if info["type"] == "directory":
            categories.add(rel.split("/", 1)[0])
            continue
        category = rel.split("/", 1)[0] if "/" in rel else None
        if category is not None:
            categories.add(category)
        files.append(SourceFile(uri=fs.to_uri(fsys, path), rel=rel, category=category))
    return Listing(files=files, categories=sorted(categories))


def load_review(review: str | None) -> dict[str, set[str]]:
    """Read a review manifest: JSON object category -> list of rejected file names."""
    if not review:
        return {}
    try:
        doc = json.loads(fs.read_bytes(review))
    except FileNotFoundError:
        raise HotdogInputError(f"review manifest not found: {review}") from None
    except json.JSONDecodeError as err:
        raise HotdogInputError(f"review manifest {review} is not valid JSON: {err}") from None
    if not isinstance(doc, dict) or not all(
            isinstance(names, list) and all(isinstance(n, str) for n in names) for names in doc.values()):
        raise HotdogInputError(f"review manifest {review} must map each category to a list of file names")
    return {category: set(names) for category, names in doc.items()}


class _Progress:
    """Process-wide count of inspected files, logged every ~10 % or 5 s."""

    lock = threading.Lock()
    done = 0
    last_log = 0.0

    @classmethod
    def tick(cls, total: int) -> None:
        with cls.lock:
            cls.done += 1
            now = time.monotonic()
            step = max(1, total // 10)
            if cls.done == 1:
                cls.last_log = now
            elif cls.done % step == 0 or now - cls.last_log > 5 or cls.done == total:
                cls.last_log = now
                log.info("inspected %d/%d files", cls.done, total)


class InspectFile(beam.DoFn):
    """Read, validate and measure one file; yield ('row', manifest_row) or ('image', (row, bytes))."""

    def __init__(self, max_pixels: int, review: dict[str, set[str]], total: int):
        self.max_pixels, self.review, self.total = max_pixels, review, total

    def process(self, source: SourceFile):
        row = {"path": source.rel, "category": source.category}
        try:
            yield from self._classify(source, row)
        finally:
            _Progress.tick(self.total)

    def _classify(self, source: SourceFile, row: dict):
        name = source.rel.split("/", 1)[-1]
        if source.category is None:
            yield "row", {**row, "outcome": "invalid", "reason": "no_category",
                          "detail": "file is not inside a category folder"}
            return
        if images.is_system_file(name):
            yield "row", {**row, "outcome": "invalid", "reason": images.SYSTEM_FILE,
                          "detail": "operating-system metadata file"}
            return
        if name in self.review.get(source.category, ()):
            yield "row", {**row, "outcome": "review_rejected", "reason": "review_manifest"}
            return
        try:
            data = fs.read_bytes(source.uri)
        except (OSError, PermissionError) as err:
            yield "row", {**row, "outcome": "invalid", "reason": images.UNREADABLE, "detail": str(err)}
            return
        check = images.inspect_image(data, self.max_pixels)
        measured = {**row, "sha256": check.sha256, "size_bytes": check.size_bytes, "format": check.format,
                    "width": check.width, "height": check.height}
        if check.reason:
            yield "row", {**measured, "outcome": "invalid", "reason": check.reason, "detail": check.detail}
        else:
            yield "image", (measured, data)


def _pick_first_by_path(keyed):
    """Group of same-sha images of one category: the first path wins, the rest are duplicates."""
    _, group = keyed
    ordered = sorted(group, key=lambda item: item[0]["path"])
    winner = ordered[0]
    yield "winner", winner
    for row, _ in ordered[1:]:
        yield "row", {**row, "outcome": "duplicate", "reason": "same_sha256",
                      "duplicate_of": winner[0]["path"]}


def _apply_cap(keyed, cap: int | None):
    """Category's unique images: the first ``cap`` paths are accepted, the rest over cap."""
    _, paths = keyed
    for index, path in enumerate(sorted(paths)):
        yield path, "accepted" if cap is None or index < cap else "over_cap"


def _join_decision(keyed):
    _, grouped = keyed
    (row, data), = grouped["image"]
    decision, = grouped["decision"]
    if decision == "accepted":
        yield "accepted", ({**row, "outcome": "accepted", "reason": None}, data)
    else:
        yield "row", {**row, "outcome": decision, "reason": "max_per_category"}


def _to_example(item, stage: str, shard_counts: dict[str, int]):
    """Accepted (row, bytes) -> (destination shard URI, (path, serialized example))."""
    row, data = item
    category = row["category"]
    shard = int(row["sha256"][:8], 16) % shard_counts[category]
    rel = f"{category}/part-{shard:05d}-of-{shard_counts[category]:05d}.tfrecord"
    record = tfrecords.ingested_example(data, category, row["sha256"], row["path"], row["width"],
                                        row["height"], row["format"])
    return fs.join(stage, rel), (row["path"], record)


def build_pipeline(p: beam.Pipeline, listing: Listing, review: dict[str, set[str]], stage: str,
                   max_per_category: int | None, max_pixels: int) -> None:
    """Add the ingestion transforms to ``p``; outputs land under ``stage``.

    Only ParDo, GroupByKey, CoGroupByKey and Flatten are used, and every file is written
    by a DoFn under its final name (no sink finalisation), so it runs unchanged on the
    Direct, Dask and Dataflow runners.
    """
    per_category = collections.Counter(f.category for f in listing.files if f.category)
    shard_counts = {c: max(1, math.ceil(n / IMAGES_PER_SHARD)) for c, n in per_category.items()}

    inspected = (p | "ListFiles" >> beam.Create(listing.files)
                 | "Spread" >> beam.Reshuffle()
                 | "Inspect" >> beam.ParDo(InspectFile(max_pixels, review, len(listing.files))))
    invalid_rows = inspected | "InvalidRows" >> beam.FlatMap(beam_io.select("row"))
    deduped = (inspected | "Images" >> beam.FlatMap(beam_io.select("image"))
               | "KeyBySha" >> beam.Map(lambda item: ((item[0]["category"], item[0]["sha256"]), item))
               | "GroupBySha" >> beam.GroupByKey()
               | "FirstWins" >> beam.FlatMap(_pick_first_by_path))
    duplicate_rows = deduped | "DuplicateRows" >> beam.FlatMap(beam_io.select("row"))
    winners = deduped | "Winners" >> beam.FlatMap(beam_io.select("winner"))
    decisions = (winners | "PathsByCategory" >> beam.Map(lambda item: (item[0]["category"], item[0]["path"]))
                 | "GroupByCategory" >> beam.GroupByKey()
                 | "Cap" >> beam.FlatMap(_apply_cap, max_per_category))
    joined = ({"image": winners | "KeyByPath" >> beam.Map(lambda item: (item[0]["path"], item)),
               "decision": decisions}
              | "JoinDecision" >> beam.CoGroupByKey()
              | "Decide" >> beam.FlatMap(_join_decision))
    accepted = joined | "Accepted" >> beam.FlatMap(beam_io.select("accepted"))
    capped_rows = joined | "OverCapRows" >> beam.FlatMap(beam_io.select("row"))

    rows = ((invalid_rows, duplicate_rows, capped_rows,
             accepted | "AcceptedRows" >> beam.Map(lambda item: item[0]))
            | "AllRows" >> beam.Flatten())
    manifest = beam_io.collect_json_lines(rows, "Manifest", fs.join(stage, MANIFEST), "path")
    shards = (accepted | "ToExample" >> beam.Map(_to_example, stage, shard_counts)
              | "GroupByShard" >> beam.GroupByKey()
              | "WriteShards" >> beam.FlatMap(beam_io.write_sorted_records)
              | "ShardInfo" >> beam.Map(lambda info: {"file": info["uri"][len(stage) + 1:],
                                                      "records": info["records"]}))
    shard_list = beam_io.collect_json_lines(shards, "ShardList", fs.join(stage, SHARD_LIST), "file")
    beam_io.join_leaves(manifest, shard_list)


def read_json_lines(uri: str) -> list[dict]:
    if not fs.exists(uri):
        return []
    return [json.loads(line) for line in fs.read_bytes(uri).decode().splitlines() if line]


def summarize(rows: list[dict], shards: list[dict], listing: Listing, review: dict[str, set[str]],
              params: dict) -> dict:
    """The run's summary.json: counts per category x outcome, duplicates, problems, shards."""
    counts = {c: dict.fromkeys(OUTCOMES, 0) for c in listing.categories}
    invalid_reasons = collections.Counter()
    accepted_by_sha = collections.defaultdict(list)
    for row in rows:
        if row["category"] is not None:
            counts[row["category"]][row["outcome"]] += 1
        if row["outcome"] == "invalid":
            invalid_reasons[row["reason"]] += 1
        if row["outcome"] == "accepted":
            accepted_by_sha[row["sha256"]].append(row["path"])
    cross = [{"sha256": sha, "paths": sorted(paths)} for sha, paths in sorted(accepted_by_sha.items())
             if len({p.split("/", 1)[0] for p in paths}) > 1]
    present = {f.rel for f in listing.files}
    unmatched = {c: sorted(n for n in names if f"{c}/{n}" not in present) for c, names in review.items()}
    totals = {outcome: sum(c[outcome] for c in counts.values()) for outcome in OUTCOMES}
    totals["invalid"] += sum(1 for row in rows if row["category"] is None)
    return {
        "params": params,
        "files": len(rows),
        "totals": totals,
        "per_category": counts,
        "invalid_reasons": dict(sorted(invalid_reasons.items())),
        "distinct_accepted_sha256": len(accepted_by_sha),
        "cross_category_duplicates": cross,
        "categories_without_accepted_images": sorted(c for c, n in counts.items() if n["accepted"] == 0),
        "review_unmatched": {c: names for c, names in sorted(unmatched.items()) if names},
        "shards": sorted(shards, key=lambda s: s["file"]),
    }


def run_ingest(source: str, out: str, review: str | None = None, max_per_category: int | None = None,
               max_pixels: int = images.DEFAULT_MAX_PIXELS, options=None) -> dict:
    """Ingest ``source`` into ``out`` with Beam ``options`` (DirectRunner if None); return the summary."""
    from tasks.runners import pipeline_options

    if max_per_category is not None and max_per_category < 1:
        raise HotdogInputError(f"--max-per-category must be >= 1, got {max_per_category}")
    listing = list_source(source)
    review_names = load_review(review)
    log.info("found %d files in %d categories under %s", len(listing.files), len(listing.categories), source)
    stage = staging.begin(out, MARKER)
    with beam.Pipeline(options=options or pipeline_options()) as p:
        build_pipeline(p, listing, review_names, stage, max_per_category, max_pixels)
    rows = read_json_lines(fs.join(stage, MANIFEST))
    shards = read_json_lines(fs.join(stage, SHARD_LIST))
    if len(rows) != len(listing.files):  # every input must be accounted for
        raise RuntimeError(f"manifest has {len(rows)} rows for {len(listing.files)} input files")
    params = {"source": source, "review": review, "max_per_category": max_per_category, "max_pixels": max_pixels}
    summary = summarize(rows, shards, listing, review_names, params)
    staging.commit(out, stage, [MANIFEST] + [s["file"] for s in shards], MARKER, summary, OWNED_PATTERNS)
    return summary


def load_summary(ingested: str) -> dict:
    """The summary of a completed ingestion at ``ingested``; error if it is missing."""
    uri = fs.join(ingested, MARKER)
    if not fs.exists(uri):
        raise HotdogInputError(f"{ingested} is not a completed ingestion (no {MARKER}); run 'hotdog ingest' first")
    return json.loads(fs.read_bytes(uri))
