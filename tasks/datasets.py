"""Beam job: build named, class-balanced TFRecord data sets.

Default mode reads a completed ingestion (deduplicated images), shuffles each class
with the data set's seed and interleaves the classes round-robin. ``compat='original'``
reproduces the original notebook's files from a plain folder tree instead (no
validation, no dedupe, sorted names, ``random.seed(seed)`` once then ``random.shuffle``
per category in class order, round-robin truncated to the shortest, one file).

Output per data set (local or gs://)::

    <out>/<name>/<name>[-SSSSS-of-NNNNN].tfrecord[.gz] examples: image, label (one-hot), extras
    <out>/<name>/dataset.md                          the data-set card, human-readable
    <out>/<name>/dataset.json                        the card; written last (completion marker)
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import random

import apache_beam as beam

from tasks import beam_io, fs, ingest, staging, tfrecords
from tasks.dataset_config import CARD, DatasetSpec
from tasks.errors import HotdogInputError
from tfx_pipeline import heap

log = logging.getLogger("hotdog.datasets")

CARD_MD = "dataset.md"
PLAN = "plan.json"  # staging only: the plan's statistics
DIGEST = "digest.jsonl"  # staging only: the images' digest
ASSIGNED = "assigned.jsonl"  # staging only, default mode: per position [image key, position, class index]
EXAMPLES_PER_ELEMENT = 512  # examples a job element carries at most (bounds a worker's memory)
INGESTED_FIELDS = ("image", "category", "sha256", "source")
OWNED_PATTERNS = ("*.tfrecord", "*.tfrecord.gz", CARD_MD)


@dataclasses.dataclass(frozen=True)
class Member:
    """An image available to a data set: ``key`` identifies it, ``order`` sorts it."""

    key: str
    class_index: int
    order: tuple
    sha256: str | None


def plan(spec: DatasetSpec, members: list[Member], dedupe: bool) -> tuple[list[Member], dict]:
    """Order ``members`` into the data set: seeded shuffle per class, round-robin interleave.

    With ``dedupe``, an image (sha256) appearing twice in one class keeps its first copy
    and one appearing in two classes is dropped from both (contradictory labels).
    Returns the ordered members and statistics for the card.
    """
    by_class = [sorted((m for m in members if m.class_index == i), key=lambda m: m.order)
                for i in range(len(spec.classes))]
    stats = {"duplicates_within_class": 0, "label_conflicts": []}
    if dedupe:
        classes_of = {}
        for i, group in enumerate(by_class):
            seen = set()
            kept = []
            for m in group:
                if m.sha256 in seen:
                    stats["duplicates_within_class"] += 1
                    continue
                seen.add(m.sha256)
                classes_of.setdefault(m.sha256, []).append(i)
                kept.append(m)
            by_class[i] = kept
        conflicts = {sha for sha, idx in classes_of.items() if len(idx) > 1}
        stats["label_conflicts"] = sorted(conflicts)
        by_class = [[m for m in group if m.sha256 not in conflicts] for group in by_class]
    rng = random.Random(spec.seed)
    for group in by_class:
        rng.shuffle(group)
    stats["available_per_class"] = [len(g) for g in by_class]
    if spec.policy == "truncate":
        n = min(len(g) for g in by_class)
        ordered = [group[i] for i in range(n) for group in by_class]
    else:
        longest = max(len(g) for g in by_class)
        ordered = [group[i] for i in range(longest) for group in by_class if i < len(group)]
    stats["examples_per_class"] = [sum(1 for m in ordered if m.class_index == i) for i in range(len(by_class))]
    return ordered, stats


def _one_hot(index: int, size: int) -> list[int]:
    return [int(i == index) for i in range(size)]


def _shard_uri(stage: str, spec_name: str, position: int, total: int, shards: int, gzip: bool) -> str:
    """Contiguous ranges of positions per shard: reading shards in name order keeps the order."""
    suffix = ".tfrecord.gz" if gzip else ".tfrecord"
    if shards == 1:
        return fs.join(stage, f"{spec_name}{suffix}")
    shard = position * shards // max(total, 1)
    return fs.join(stage, f"{spec_name}-{shard:05d}-of-{shards:05d}{suffix}")


class _DatasetJob:
    """Shared shape of both modes: the plan made in the driver, the examples written by the job."""

    def __init__(self, specs: list[DatasetSpec], out: str, shards: int, gzip: bool):
        if shards < 1:
            raise HotdogInputError(f"--shards must be >= 1, got {shards}")
        self.specs, self.out, self.shards, self.gzip = specs, out, shards, gzip
        self.stages = {s.name: staging.begin(fs.join(out, s.name), CARD) for s in specs}


def _write_examples(assigned, label: str, job: _DatasetJob):
    """(spec name, position, total, record, image sha256) -> shard files + per-set input digests."""
    written = (assigned
               | f"{label}ByShard" >> beam.Map(lambda a: (
                   _shard_uri(job.stages[a[0]], a[0], a[1], a[2], job.shards, job.gzip), (a[1], a[3])))
               | f"{label}GroupShard" >> beam.GroupByKey()
               | f"{label}WriteShard" >> beam.FlatMap(beam_io.write_sorted_records, job.gzip))
    digests = (assigned | f"{label}ShaBySet" >> beam.Map(lambda a: (a[0], a[4]))
               | f"{label}GroupSha" >> beam.GroupByKey()
               | f"{label}Digest" >> beam.Map(lambda kv: {"dataset": kv[0], "images_sha256": beam_io.digest(kv[1]),
                                                          "images": len(list(kv[1]))}))
    return written, digests


@heap.frozen()
def build_from_ingested(ingested: str, specs: list[DatasetSpec], out: str, shards: int = 1, gzip: bool = False,
                        options=None) -> dict[str, dict]:
    """Default mode: data sets from the ingestion at ``ingested``; returns the cards by name.

    The plan (which image goes where) is made here from the ingestion's manifest; the job
    reads each ingested shard once and writes the examples, one element per shard and
    destination file rather than per image."""
    from tasks.runners import pipeline_options

    summary = ingest.load_summary(ingested)
    available = {c for c, counts in summary["per_category"].items() if counts["accepted"]}
    for spec in specs:
        for cls, cats in zip(spec.classes, spec.categories):
            missing = [c for c in cats if c not in available]
            if missing:
                raise HotdogInputError(
                    f"data set '{spec.name}', class '{cls}': categories {missing} have no accepted images in "
                    f"{ingested} (available: {sorted(available)})")
    needed = sorted({c for spec in specs for cats in spec.categories for c in cats})
    shard_files = [fs.join(ingested, s["file"]) for s in summary["shards"] if s["file"].split("/", 1)[0] in needed]
    job = _DatasetJob(specs, out, shards, gzip)
    accepted = [(row["category"], row["sha256"], row["path"])
                for row in ingest.read_json_lines(fs.join(ingested, ingest.MANIFEST))
                if row["outcome"] == "accepted" and row["category"] in needed]
    for spec in specs:
        _plan_into_stage(spec, accepted, job)
    with beam.Pipeline(options=options or pipeline_options()) as p:
        written = (p | "Shards" >> beam.Create(shard_files) | "SpreadShards" >> beam.Reshuffle()
                   | "Examples" >> beam.ParDo(_ExamplesOfShard(job))
                   | "GroupShard" >> beam.GroupByKey()
                   | "WriteShard" >> beam.FlatMap(beam_io.write_sorted_records, gzip, batched=True))
        _collect(written, None, job)
    inputs = {"ingest_summary_sha256": hashlib.sha256(staging.dump_json(summary)).hexdigest(), "ingested": ingested}
    return _commit_all(job, "default", inputs)


def _plan_into_stage(spec: DatasetSpec, accepted: list[tuple[str, str, str]], job: _DatasetJob) -> None:
    """Plan ``spec`` from the ingestion's accepted (category, sha256, path) and write into its
    staging folder: the statistics (PLAN), the images' digest (DIGEST) and each position's
    image (ASSIGNED: key, position, class index)."""
    members = [Member(f"{cat}/{sha}", i, (cats.index(cat), path), sha)
               for cat, sha, path in accepted for i, cats in enumerate(spec.categories) if cat in cats]
    ordered, stats = plan(spec, members, dedupe=True)
    stage = job.stages[spec.name]
    fs.write_bytes_atomic(fs.join(stage, PLAN), staging.dump_json(stats))
    digest = {"dataset": spec.name, "images_sha256": beam_io.digest(m.sha256 for m in ordered), "images": len(ordered)}
    fs.write_bytes_atomic(fs.join(stage, DIGEST), (json.dumps(digest) + "\n").encode())
    fs.write_bytes_atomic(fs.join(stage, ASSIGNED), "".join(
        json.dumps([m.key, position, m.class_index]) + "\n" for position, m in enumerate(ordered)).encode())


class _ExamplesOfShard(beam.DoFn):
    """One ingested shard -> (destination file, [(position, labelled example), ...]) for every
    data set position of its images, at most ``EXAMPLES_PER_ELEMENT`` examples an element."""

    def __init__(self, job: _DatasetJob):
        self.job = job
        self.assigned: dict[str, list[tuple[DatasetSpec, int, int, int]]] = {}  # key -> (spec, position, total, class)

    def setup(self):
        for spec in self.job.specs:
            lines = fs.read_bytes(fs.join(self.job.stages[spec.name], ASSIGNED)).decode().splitlines()
            for key, position, class_index in map(json.loads, lines):
                self.assigned.setdefault(key, []).append((spec, position, len(lines), class_index))

    def process(self, shard_uri: str):
        pending = collections.defaultdict(list)
        for record in tfrecords.read_file(shard_uri):
            image = tfrecords.bytes_features(record, INGESTED_FIELDS)
            category, sha256 = image["category"].decode(), image["sha256"].decode()
            for spec, position, total, class_index in self.assigned.get(f"{category}/{sha256}", ()):
                example = tfrecords.labelled_example(image["image"], _one_hot(class_index, len(spec.classes)), {
                    "class": spec.classes[class_index], "category": category, "sha256": sha256,
                    "source": image["source"].decode()})
                uri = _shard_uri(self.job.stages[spec.name], spec.name, position, total, self.job.shards, self.job.gzip)
                pending[uri].append((position, example))
                if len(pending[uri]) == EXAMPLES_PER_ELEMENT:
                    yield uri, pending.pop(uri)
        yield from pending.items()


def build_original(source: str, specs: list[DatasetSpec], out: str, options=None) -> dict[str, dict]:
    """``--compat original``: reproduce the original notebook's TFRecords from a plain folder tree."""
    from tasks.runners import pipeline_options

    listing = ingest.list_source(source)
    by_category = {}
    for f in listing.files:
        if f.category is not None:
            by_category.setdefault(f.category, []).append(f)
    job = _DatasetJob(specs, out, shards=1, gzip=False)
    work = []
    for spec in specs:
        lists = []
        for cls, cats in zip(spec.classes, spec.categories):
            if len(cats) != 1:
                raise HotdogInputError(f"--compat original needs one category per class; data set '{spec.name}' "
                                       f"class '{cls}' lists {list(cats)}")
            if not by_category.get(cats[0]):
                raise HotdogInputError(f"data set '{spec.name}', class '{cls}': no files in category folder "
                                       f"'{cats[0]}' under {source}")
            lists.append(sorted(by_category[cats[0]], key=lambda f: f.rel.rsplit("/", 1)[-1]))
        rng = random.Random(spec.seed)  # the original: random.seed(123) once, then shuffle each list
        for group in lists:
            rng.shuffle(group)
        ordered = [(i, group[n]) for n in range(min(map(len, lists))) for i, group in enumerate(lists)]
        stats = {"available_per_class": [len(g) for g in lists],
                 "examples_per_class": [sum(1 for i, _ in ordered if i == c) for c in range(len(lists))]}
        fs.write_bytes_atomic(fs.join(job.stages[spec.name], PLAN), staging.dump_json(stats))
        work += [(spec.name, pos, len(ordered), i, f.uri, len(spec.classes)) for pos, (i, f) in enumerate(ordered)]

    def read_original(item):
        name, position, total, class_index, uri, n_classes = item
        image = fs.read_bytes(uri)
        record = tfrecords.labelled_example(image, _one_hot(class_index, n_classes))
        return name, position, total, record, hashlib.sha256(image).hexdigest()

    with beam.Pipeline(options=options or pipeline_options()) as p:
        assigned = (p | "Work" >> beam.Create(work) | "Spread" >> beam.Reshuffle()
                    | "ReadOriginal" >> beam.Map(read_original))
        written, digests = _write_examples(assigned, "Original", job)
        _collect(written, digests, job)
    return _commit_all(job, "original", {"source": source})


def _collect(written, digests, job: _DatasetJob) -> None:
    """Record what the job wrote into each data set's staging folder (read back by the driver):
    its files and, unless ``digests`` is None (written by the driver), its images' digest."""
    leaves = []
    for spec in job.specs:
        stage = job.stages[spec.name]
        mine = (written | f"Files{spec.name}" >> beam.Filter(lambda w, st=stage: w["uri"].startswith(st + "/"))
                | f"Rel{spec.name}" >> beam.Map(lambda w, st=stage: {"file": w["uri"][len(st) + 1:],
                                                                    "records": w["records"]}))
        leaves.append(beam_io.collect_json_lines(mine, f"FileList{spec.name}", fs.join(stage, "files.jsonl"), "file"))
        if digests is not None:
            theirs = digests | f"Digest{spec.name}" >> beam.Filter(lambda d, n=spec.name: d["dataset"] == n)
            leaves.append(beam_io.collect_json_lines(theirs, f"DigestOf{spec.name}", fs.join(stage, DIGEST),
                                                     "dataset"))
    beam_io.join_leaves(*leaves)


def _commit_all(job: _DatasetJob, mode: str, inputs: dict) -> dict[str, dict]:
    """Publish every data set, once each one's files hold the examples its plan counts."""
    cards = {}
    for spec in job.specs:
        stage = job.stages[spec.name]
        files = ingest.read_json_lines(fs.join(stage, "files.jsonl"))
        digest = (ingest.read_json_lines(fs.join(stage, DIGEST)) or [{}])[0]
        stats = json.loads(fs.read_bytes(fs.join(stage, PLAN)))
        cards[spec.name] = card = _card(spec, mode, job, files, stats,
                                        {**inputs, **{k: v for k, v in digest.items() if k != "dataset"}})
        written = sum(f["records"] for f in files)
        if written != card["examples"]:
            raise HotdogInputError(
                f"data set '{spec.name}': {card['examples']} examples planned, {written} written: "
                f"{inputs.get('ingested') or inputs.get('source')} does not hold every image it lists (changed "
                f"since it was written?); nothing was published; ingest again")
    for spec in job.specs:
        stage, card = job.stages[spec.name], cards[spec.name]
        fs.write_bytes_atomic(fs.join(stage, CARD_MD), card_markdown(card).encode())
        staging.commit(fs.join(job.out, spec.name), stage, [f["file"] for f in card["files"]] + [CARD_MD], CARD,
                       card, OWNED_PATTERNS)
        log.info("data set %s: %d examples in %d file(s)", spec.name, card["examples"], len(card["files"]))
    return cards


def _card(spec: DatasetSpec, mode: str, job: _DatasetJob, files: list[dict], stats: dict, inputs: dict) -> dict:
    return {
        "name": spec.name,
        "mode": mode,
        "classes": [{"name": cls, "label_index": i, "categories": list(cats),
                     "available": stats["available_per_class"][i], "examples": stats["examples_per_class"][i]}
                    for i, (cls, cats) in enumerate(zip(spec.classes, spec.categories))],
        "examples": sum(stats["examples_per_class"]),
        "seed": spec.seed,
        "policy": spec.policy if mode == "default" else "truncate",
        "duplicates_within_class": stats.get("duplicates_within_class", 0),
        "label_conflicts": stats.get("label_conflicts", []),
        "files": sorted(files, key=lambda f: f["file"]),
        "compression": "GZIP" if job.gzip else None,
        "features": {"image": "bytes: the original image file", "label": f"int64 x {len(spec.classes)}: one-hot"}
        | ({"class": "bytes", "category": "bytes", "sha256": "bytes", "source": "bytes"} if mode == "default" else {}),
        "inputs": inputs,
    }


def card_markdown(card: dict) -> str:
    """The data-set card as Markdown."""
    lines = [f"# Data set `{card['name']}`", "",
             f"{card['examples']} examples, mode `{card['mode']}`, seed {card['seed']}, policy `{card['policy']}`, "
             f"{len(card['files'])} file(s){', GZIP' if card['compression'] else ''}.", "",
             "| label | class | categories | available | examples |", "|---|---|---|---|---|"]
    for c in card["classes"]:
        lines.append(f"| {c['label_index']} | {c['name']} | {', '.join(c['categories'])} | {c['available']} "
                     f"| {c['examples']} |")
    lines += ["", f"Within-class duplicates dropped: {card['duplicates_within_class']}; "
              f"images with contradictory labels dropped: {len(card['label_conflicts'])}.", "", "Inputs:", ""]
    lines += [f"- {k}: `{v}`" for k, v in sorted(card["inputs"].items())]
    return "\n".join(lines) + "\n"
