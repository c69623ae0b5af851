"""The feature cache: keyed by everything that determines a feature, safe against corrupt
files and runs at once."""
import os
import threading

import numpy as np

from tfx_pipeline import feature_cache

WEIGHTS = [np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(3, np.float32)]


def counting(calls):
    def compute(images):
        calls.append(len(images))
        return np.array([[len(i), i[0]] for i in images], np.float32)
    return compute


def test_fingerprint_changes_with_backbone_size_and_weights(tmp_path):
    digest = feature_cache.weights_digest(WEIGHTS)
    base = feature_cache.fingerprint("tiny", 64, digest)
    assert digest == feature_cache.weights_digest([w.copy() for w in WEIGHTS])
    assert base == feature_cache.fingerprint("tiny", 64, digest)
    changed = feature_cache.weights_digest([WEIGHTS[0] + 1e-7, WEIGHTS[1]])
    (tmp_path / "weights.h5").write_bytes(b"weights")
    others = {feature_cache.fingerprint("efficientnet_lite0", 64, digest), feature_cache.fingerprint("tiny", 32, digest),
              feature_cache.fingerprint("tiny", 64, changed),
              feature_cache.fingerprint("tiny", 64, feature_cache.weights_digest(WEIGHTS[:1])),
              feature_cache.fingerprint("tiny", 64, feature_cache.file_digest(str(tmp_path / "weights.h5")))}
    assert base not in others and len(others) == 5


def test_each_image_is_computed_once_across_runs(tmp_path):
    calls = []
    first = feature_cache.FeatureCache(str(tmp_path), "f")
    features, computed = first.features([b"ab", b"cd", b"ab"], counting(calls))
    assert computed == 2 and calls == [2] and features[:, 0].tolist() == [2, 2, 2]
    later = feature_cache.FeatureCache(str(tmp_path), "f")  # a new run reads what the first stored
    features, computed = later.features([b"cd", b"xyz", b"ab"], counting(calls))
    assert computed == 1 and calls == [2, 1]
    assert features.tolist() == [[2, ord("c")], [3, ord("x")], [2, ord("a")]]
    other = feature_cache.FeatureCache(str(tmp_path), "g")  # another fingerprint shares nothing
    assert other.features([b"ab"], counting(calls))[1] == 1


def test_keys_ending_in_zero_bytes_are_found(tmp_path):
    """Digests are stored as raw bytes; one that ends in NUL must still match."""
    image = next(n.to_bytes(2, "big") for n in range(65536)
                 if feature_cache.image_key(n.to_bytes(2, "big")).endswith(b"\0"))
    feature_cache.FeatureCache(str(tmp_path), "f").features([image], counting([]))
    calls = []
    assert feature_cache.FeatureCache(str(tmp_path), "f").features([image], counting(calls))[1] == 0 and not calls


def test_a_corrupt_file_is_moved_aside_and_its_images_recomputed(tmp_path):
    cache = feature_cache.FeatureCache(str(tmp_path), "f")
    cache.features([b"ab", b"cd"], counting([]))
    (stored,) = [p for p in os.listdir(cache.dir) if p.endswith(".npz")]
    path = os.path.join(cache.dir, stored)
    data = bytearray(open(path, "rb").read())
    data[-10] ^= 0xFF
    open(path, "wb").write(bytes(data))
    calls = []
    features, computed = feature_cache.FeatureCache(str(tmp_path), "f").features([b"ab", b"cd"], counting(calls))
    assert computed == 2 and features[:, 1].tolist() == [ord("a"), ord("c")]
    assert os.path.exists(path + ".corrupt")


def test_a_file_another_run_moved_aside_is_recomputed(tmp_path):
    cache = feature_cache.FeatureCache(str(tmp_path), "f")
    cache.features([b"ab"], counting([]))
    (stored,) = [os.path.join(cache.dir, p) for p in os.listdir(cache.dir) if p.endswith(".npz")]
    os.rename(stored, stored + ".corrupt")  # between this run's listing and its read
    assert cache._read_checked(stored) is None
    calls = []
    assert feature_cache.FeatureCache(str(tmp_path), "f").features([b"ab"], counting(calls))[1] == 1 and calls == [1]


def test_partial_files_are_never_read(tmp_path):
    cache = feature_cache.FeatureCache(str(tmp_path), "f")
    os.makedirs(cache.dir)
    open(os.path.join(cache.dir, ".0123.partial"), "wb").write(b"half a file")
    assert cache.load() == {}


def test_runs_at_once_only_add_files(tmp_path):
    images = [bytes([i, j]) for i in range(20) for j in range(5)]
    errors = []

    def run(part):
        try:
            feature_cache.FeatureCache(str(tmp_path), "f").features(images[part::3], counting([]))
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(3)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors
    calls = []
    features, computed = feature_cache.FeatureCache(str(tmp_path), "f").features(images, counting(calls))
    assert computed == 0 and features[:, 1].tolist() == [i[0] for i in images]


def test_the_converted_backbone_is_stored_once(tmp_path):
    conversions = []

    def convert():
        conversions.append(1)
        return b"flatbuffer"

    assert feature_cache.FeatureCache(str(tmp_path), "f").backbone(convert) == b"flatbuffer"
    assert feature_cache.FeatureCache(str(tmp_path), "f").backbone(convert) == b"flatbuffer"
    assert len(conversions) == 1


def test_the_frozen_graph_is_stored_once_and_apart_from_the_converted_backbone(tmp_path):
    made = []
    cache = feature_cache.FeatureCache(str(tmp_path), "f")
    assert cache.graph(lambda: made.append("graph") or b"graph") == b"graph"
    assert cache.backbone(lambda: made.append("flatbuffer") or b"flatbuffer") == b"flatbuffer"
    assert feature_cache.FeatureCache(str(tmp_path), "f").graph(lambda: made.append("again") or b"x") == b"graph"
    assert made == ["graph", "flatbuffer"]
