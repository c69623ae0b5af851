"""Beam job: ingest a folder-per-category image tree into validated, deduplicated TFRecords.

Every input file gets exactly one manifest outcome:
``accepted``, ``duplicate`` (same sha256 as an earlier file of the same category, the
first in sorted path order wins), ``review_rejected``, ``over_cap`` or ``invalid`` (with
a reason). Output folder (local or gs://)::

    <out>/<category>/part-SSSSS-of-NNNNN.tfrecord   accepted images (see tfrecords.ingested_examples)
    <out>/manifest.jsonl                            one JSON object per input file, sorted by path
    <out>/summary.json                              counts, duplicates, shards; written last
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import math
import threading
import time

import apache_beam as beam

from tasks import beam_io, fs, images, inputs, staging, tfrecords
from tasks.errors import HotdogInputError
from tfx_pipeline import heap

log = logging.getLogger("hotdog.ingest")

MARKER = "summary.json"
# What makes one file unreadable for good (a dangling link, no permission); an I/O or network
# error is the infrastructure's: the job fails, nothing is committed and a re-run reads the file.
UNREADABLE_ERRORS = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
MANIFEST = "manifest.jsonl"
SHARD_LIST = "shards.jsonl"  # staging only: the shard files the job wrote
SHARD_BYTES = 128 * 2**20  # target TFRecord shard size; also bounds the memory of one shard group
BATCH_FILES = 1024  # files per Beam element: amortises per-element and per-decode-batch overhead
BATCH_BYTES = 256 * 2**20  # ...and at most this many bytes of them, so a worker holds about one batch
KNOWN_CHECKS = 50_000  # checks a worker keeps by content (~20 MB), so a duplicate is not decoded again
OUTCOMES = ("accepted", "duplicate", "review_rejected", "over_cap", "invalid")
OWNED_PATTERNS = ("*/part-*-of-*.tfrecord", MANIFEST)


@dataclasses.dataclass(frozen=True)
class SourceFile:
    """One input file: ``rel`` is its path under the source root ('<category>/<name>')."""

    uri: str
    rel: str
    category: str | None
    size: int = 0


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
        files.append(SourceFile(uri=fs.to_uri(fsys, path), rel=rel, category=category, size=info.get("size") or 0))
    return Listing(files=files, categories=sorted(categories))


class _Progress:
    """Process-wide count of inspected files, logged every ~10 % or 5 s."""

    lock = threading.Lock()
    done = 0
    last_log = 0.0

    @classmethod
    def advance(cls, files: int, total: int) -> None:
        with cls.lock:
            before, cls.done = cls.done, cls.done + files
            now = time.monotonic()
            step = max(1, total // 10)
            if cls.done // step > before // step or now - cls.last_log > 5 or cls.done >= total:
                cls.last_log = now
                log.info("inspected %d/%d files", min(cls.done, total), total)


class InspectBatch(beam.DoFn):
    """Read, validate and measure a batch of files.

    Yields ('rows', [manifest rows]) for files that are settled here (invalid, review
    rejected) and ('images', ((category, shard), [(row, uri), ...])) for valid images,
    where equal bytes always land in the same shard, so dedupe within a shard is complete.
    The bytes stay behind: the shard's writer reads the winners again.
    """

    def __init__(self, listing_uri: str, max_pixels: int, review: dict[str, set[str]],
                 shard_counts: dict[str, int], total: int):
        self.listing_uri, self.max_pixels, self.review = listing_uri, max_pixels, review
        self.shard_counts, self.total = shard_counts, total
        self.files: list[SourceFile] = []
        self.known: dict[str, images.ImageCheck] = {}

    def setup(self):
        self.files = [SourceFile(**row) for row in read_json_lines(self.listing_uri)]

    def process(self, span: tuple[int, int]):
        batch = self.files[span[0]:span[1]]
        rows, to_read, readable = [], [], []
        for source in batch:
            settled = self._settle_before_reading(source)
            if settled is None:
                to_read.append(source)
            else:
                rows.append(settled)
        for source, data in zip(to_read, fs.read_many([source.uri for source in to_read])):
            if isinstance(data, UNREADABLE_ERRORS):  # the file's own problem
                rows.append({"path": source.rel, "category": source.category, "outcome": "invalid",
                             "reason": images.UNREADABLE, "detail": str(data)})
            elif isinstance(data, Exception):  # any other error is the infrastructure's: the job fails
                raise data
            else:
                readable.append((source, data))
        if len(self.known) > KNOWN_CHECKS:
            self.known.clear()
        checks = images.inspect_images([d for _, d in readable], self.max_pixels, self.known)
        valid = collections.defaultdict(list)
        for (source, _), check in zip(readable, checks):
            row = {"path": source.rel, "category": source.category, "sha256": check.sha256,
                   "size_bytes": check.size_bytes, "format": check.format, "width": check.width,
                   "height": check.height}
            if check.reason:
                rows.append({**row, "outcome": "invalid", "reason": check.reason, "detail": check.detail})
            else:
                shard = int(check.sha256[:8], 16) % self.shard_counts[source.category]
                valid[(source.category, shard)].append((row, source.uri))
        _Progress.advance(len(batch), self.total)
        if rows:
            yield "rows", rows
        for key, items in valid.items():
            yield "images", (key, items)

    def _settle_before_reading(self, source: SourceFile) -> dict | None:
        """The manifest row of a file that needs no reading (stray, system, review-rejected)."""
        row = {"path": source.rel, "category": source.category}
        name = source.rel.split("/", 1)[-1]
        if source.category is None:
            return {**row, "outcome": "invalid", "reason": "no_category",
                    "detail": "file is not inside a category folder"}
        if images.is_system_file(name):
            return {**row, "outcome": "invalid", "reason": images.SYSTEM_FILE,
                    "detail": "operating-system metadata file"}
        if name in self.review.get(source.category, ()):
            return {**row, "outcome": "review_rejected", "reason": "review_manifest"}
        if source.size > images.max_file_bytes(self.max_pixels):
            return {**row, "outcome": "invalid", "reason": images.TOO_LARGE, "size_bytes": source.size,
                    "detail": f"{source.size} bytes > limit {images.max_file_bytes(self.max_pixels)} "
                              f"(4 bytes a pixel at the {self.max_pixels}-pixel limit); not read"}
        return None


def _first_path_wins(keyed):
    """One shard's valid images: per sha256 the first path is kept, later ones are duplicates."""
    key, batches = keyed
    winners, duplicates = {}, []
    for row, uri in sorted((item for batch in batches for item in batch), key=lambda item: item[0]["path"]):
        first = winners.setdefault(row["sha256"], (row, uri))
        if first[0] is not row:
            duplicates.append({**row, "outcome": "duplicate", "reason": "same_sha256",
                               "duplicate_of": first[0]["path"]})
    if duplicates:
        yield "rows", duplicates
    yield "winners", (key, sorted(winners.values(), key=lambda item: item[0]["path"]))


def _over_cap(keyed, cap: int):
    """One category's shards of unique images -> per shard, the paths beyond the first ``cap``."""
    category, shards = keyed
    shards = list(shards)
    paths = sorted(path for _, shard_paths in shards for path in shard_paths)
    over = set(paths[cap:])
    for shard, shard_paths in shards:
        yield (category, shard), [p for p in shard_paths if p in over]


class WriteShard(beam.DoFn):
    """Write one shard's accepted images as a TFRecord file (sorted by path) under ``stage``,
    reading each again and checking it still has the sha256 it was validated with.

    Yields ('rows', [accepted and over-cap rows]) and ('shard', {file, records}).
    """

    def __init__(self, stage: str, shard_counts: dict[str, int]):
        self.stage, self.shard_counts = stage, shard_counts

    def process(self, keyed):
        (category, shard), winners, over_cap = self._unpack(keyed)
        accepted = [(row, uri) for row, uri in winners if row["path"] not in over_cap]
        rows = [{**row, "outcome": "over_cap", "reason": "max_per_category"}
                for row, _ in winners if row["path"] in over_cap]
        rows += [{**row, "outcome": "accepted", "reason": None} for row, _ in accepted]
        yield "rows", rows
        if accepted:
            rel = f"{category}/part-{shard:05d}-of-{self.shard_counts[category]:05d}.tfrecord"
            contents = fs.read_many([uri for _, uri in accepted])
            records = tfrecords.ingested_examples(
                (_unchanged(data, row), category, row["sha256"], row["path"], row["width"], row["height"], row["format"])
                for (row, _), data in zip(accepted, contents))
            count = tfrecords.write_file(records, fs.join(self.stage, rel))
            yield "shard", {"file": rel, "records": count}

    @staticmethod
    def _unpack(keyed):
        key, value = keyed
        if isinstance(value, dict):  # CoGroupByKey of winners with the cap decision
            (winners,), (over_cap,) = value["winners"], value["over_cap"]
            return key, winners, set(over_cap)
        return key, value, set()


def _unchanged(data: bytes | Exception, row: dict) -> bytes:
    """The bytes of an accepted file read again, if they are still those it was validated with."""
    changed = isinstance(data, bytes) and hashlib.sha256(data).hexdigest() != row["sha256"]
    if changed or isinstance(data, UNREADABLE_ERRORS):
        raise HotdogInputError(
            f"{row['path']} changed or disappeared while it was being ingested (validated with sha256 "
            f"{row['sha256']}); nothing was committed; run the ingestion again once the folder is complete")
    if isinstance(data, Exception):  # the infrastructure's error: the job fails
        raise data
    return data


def _shard_counts(listing: Listing) -> dict[str, int]:
    sizes = collections.Counter()
    for f in listing.files:
        if f.category is not None:
            sizes[f.category] += f.size
    return {c: max(1, math.ceil(sizes[c] / SHARD_BYTES)) for c in listing.categories}


def batch_spans(sizes: list[int], max_files: int = BATCH_FILES, max_bytes: int = BATCH_BYTES) -> list[tuple[int, int]]:
    """[start, end) spans of consecutive files, each of at most ``max_files`` files and
    ``max_bytes`` bytes (a single larger file gets a span of its own)."""
    spans, start, held = [], 0, 0
    for index, size in enumerate(sizes):
        if index > start and (index - start == max_files or held + size > max_bytes):
            spans.append((start, index))
            start, held = index, 0
        held += size
    if start < len(sizes):
        spans.append((start, len(sizes)))
    return spans


def build_pipeline(p: beam.Pipeline, listing: Listing, review: dict[str, set[str]], stage: str,
                   max_per_category: int | None, max_pixels: int) -> None:
    """Add the ingestion transforms to ``p``; outputs land under ``stage``.

    Elements are batches and shards, not single images, so per-element overhead stays
    small. Only ParDo, GroupByKey, CoGroupByKey and Flatten are used, and every file is
    written by a DoFn under its final name (no sink finalisation), so the job runs
    unchanged on the Direct, Dask and Dataflow runners.
    """
    shard_counts = _shard_counts(listing)
    # The listing travels as a file, not inside the job graph (a big Create bloats and slows it).
    listing_uri = fs.join(stage, "listing.jsonl")
    fs.write_bytes_atomic(listing_uri, "".join(
        json.dumps(vars(f), ensure_ascii=False) + "\n" for f in listing.files).encode())
    total = len(listing.files)
    spans = batch_spans([f.size for f in listing.files])
    inspected = (p | "Batches" >> beam.Create(spans)
                 | "Spread" >> beam.Reshuffle()
                 | "Inspect" >> beam.ParDo(InspectBatch(listing_uri, max_pixels, review, shard_counts, total)))
    deduped = (inspected | "ValidImages" >> beam.FlatMap(beam_io.select("images"))
               | "GroupByShard" >> beam.GroupByKey()
               | "FirstPathWins" >> beam.FlatMap(_first_path_wins))
    winners = deduped | "Winners" >> beam.FlatMap(beam_io.select("winners"))
    if max_per_category is not None:
        over_cap = (winners
                    | "PathsByCategory" >> beam.Map(lambda kv: (kv[0][0], (kv[0][1], [r["path"] for r, _ in kv[1]])))
                    | "GroupByCategory" >> beam.GroupByKey()
                    | "Cap" >> beam.FlatMap(_over_cap, max_per_category))
        winners = {"winners": winners, "over_cap": over_cap} | "JoinCap" >> beam.CoGroupByKey()
    written = winners | "WriteShards" >> beam.ParDo(WriteShard(stage, shard_counts))

    rows = ((inspected | "SettledRows" >> beam.FlatMap(beam_io.select("rows")),
             deduped | "DuplicateRows" >> beam.FlatMap(beam_io.select("rows")),
             written | "WrittenRows" >> beam.FlatMap(beam_io.select("rows")))
            | "AllRows" >> beam.Flatten())
    manifest = beam_io.collect_json_lines(rows, "Manifest", fs.join(stage, MANIFEST), "path", batched=True)
    shards = written | "ShardInfo" >> beam.FlatMap(beam_io.select("shard"))
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


@heap.frozen()
def run_ingest(source: str, out: str, review: str | None = None, max_per_category: int | None = None,
               max_pixels: int = images.DEFAULT_MAX_PIXELS, options=None) -> dict:
    """Ingest ``source`` into ``out`` with Beam ``options`` (DirectRunner if None); return the summary."""
    from tasks.runners import pipeline_options

    if max_per_category is not None and max_per_category < 1:
        raise HotdogInputError(f"--max-per-category must be >= 1, got {max_per_category}")
    listing = list_source(source)
    review_names = inputs.load_review(review)
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
