"""Serve a work folder's registry as TF Serving does: one version at a time, the latest complete
one (or the pinned one), loaded and warmed up before it replaces the one serving, so no request
fails or mixes versions during a switch. A version that fails to load is reported and skipped;
the one serving keeps serving.

Every request goes through the serving version's :class:`~tasks.serving.batching.Batcher` as
serialized tf.Examples holding ``image`` (the SavedModel's ``serving_default`` input) and gets
one softmax row per example back, with the version that computed it.
"""
from __future__ import annotations

import dataclasses
import io
import logging
import shutil
import tempfile
import threading
import time
from typing import Callable

from tasks import class_names, fs, images, tfrecords, training
from tasks.errors import HotdogInputError
from tasks.serving import registry
from tasks.serving.batching import Batcher, BatcherClosed
from tasks.serving.options import DEFAULTS
from tasks.serving.scorer import Scorer

log = logging.getLogger("hotdog.serving")
IMAGE_KEY = "image"


class NotServed(LookupError):
    """No such model or version is being served (HTTP 404)."""


@dataclasses.dataclass
class Servable:
    """One loaded version."""

    version: str
    source: str  # the registry folder it was loaded from
    classes: list[str]
    lineage: dict | None
    signatures: dict  # signature name -> {"inputs": {name: spec}, "outputs": {name: spec}}, specs as TF Serving
    batcher: Batcher
    loaded_at: str
    local_copy: str | None = None  # a downloaded gs:// version, removed when retired

    @property
    def accuracy(self) -> float | None:
        return (self.lineage or {}).get("accuracy")

    def retire(self) -> None:
        self.batcher.close()
        if self.local_copy:
            shutil.rmtree(self.local_copy, ignore_errors=True)


def image_of(serialized: bytes, index: int) -> bytes:
    """The image of a serialized tf.Example; HotdogInputError naming instance ``index`` otherwise."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.example import example_pb2

    try:
        example = example_pb2.Example.FromString(serialized)
    except DecodeError:
        raise HotdogInputError(f"instance {index} is not a serialized tf.Example (send base64 of a tf.Example "
                               f"with an '{IMAGE_KEY}' bytes feature, or POST the image to :classify-image)") from None
    values = example.features.feature[IMAGE_KEY].bytes_list.value if IMAGE_KEY in example.features.feature else []
    if len(values) != 1:
        raise HotdogInputError(f"instance {index}: the tf.Example needs exactly one '{IMAGE_KEY}' bytes value, "
                               f"got {len(values)}")
    return values[0]


def check_requests(requests: list[list[bytes]], max_pixels: int) -> list[Exception | None]:
    """Per request, the first instance that is not a tf.Example holding a decodable image within
    ``max_pixels`` (HotdogInputError naming it), else None. All images are decoded together."""
    errors: list[Exception | None] = [None] * len(requests)
    blobs, owners = [], []
    for r, request in enumerate(requests):
        try:
            found = [image_of(serialized, i) for i, serialized in enumerate(request)]
        except HotdogInputError as err:
            errors[r] = err
            continue
        blobs += found
        owners += [(r, i) for i in range(len(found))]
    for (r, i), check in zip(owners, images.inspect_images(blobs, max_pixels)):
        if check.reason and errors[r] is None:
            errors[r] = HotdogInputError(f"instance {i}: {check.reason}" + (f" ({check.detail})" if check.detail
                                                                              else ""))
    return errors


def _tensor_spec(spec, tensor_name: str) -> dict:
    """A TensorSpec as TF Serving's metadata API writes a TensorInfo."""
    from tensorflow.core.framework import types_pb2

    dims = [{"size": str(-1 if d is None else d), "name": ""} for d in spec.shape.as_list()]
    return {"dtype": types_pb2.DataType.Name(spec.dtype.as_datatype_enum),
            "tensor_shape": {"dim": dims, "unknown_rank": False}, "name": tensor_name}


def _describe_signatures(model) -> dict:
    described = {}
    for name, function in model.signatures.items():
        _, inputs = function.structured_input_signature
        described[name] = {
            "inputs": {k: _tensor_spec(v, f"{name}_{k}:0") for k, v in inputs.items()},
            "outputs": {k: _tensor_spec(v, f"StatefulPartitionedCall:{i}")
                        for i, (k, v) in enumerate(sorted(function.structured_outputs.items()))},
            "method_name": "tensorflow/serving/predict"}
    return described


def _warm_up_example() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (128, 128, 128)).save(buffer, "PNG")
    return tfrecords.image_example(buffer.getvalue())


def load(workdir: str, version: str, max_batch_size: int, window_s: float, max_pixels: int) -> Servable:
    """Load ``version`` of the registry (a gs:// one through a local copy), run one example
    through it, and start its batcher."""
    import tensorflow as tf

    source = registry.version_dir(workdir, version)
    local_copy = None
    if fs.is_remote(source):
        local_copy = tempfile.mkdtemp(prefix=f"hotdog-model-{version}-")
        fsys, path = fs.filesystem(source)
        fsys.get(path.rstrip("/") + "/", local_copy + "/", recursive=True)
    try:
        model = tf.saved_model.load(local_copy or source)
        run_batch = Scorer(local_copy or source, saved_model=model, workers=1)  # one interpreter: lowest latency
        outputs = run_batch([_warm_up_example()]).shape[-1]
        names = class_names.of_model(local_copy or source, outputs)
        batcher = Batcher(run_batch, lambda requests: check_requests(requests, max_pixels), max_batch_size,
                          window_s, name=f"batcher-{version}")
        return Servable(version=version, source=source, classes=names, lineage=registry.lineage(workdir, version),
                        signatures=_describe_signatures(model), batcher=batcher, loaded_at=registry.utc_now(),
                        local_copy=local_copy)
    except BaseException:
        if local_copy:
            shutil.rmtree(local_copy, ignore_errors=True)
        raise


class ModelManager:
    """Follows ``workdir``'s registry: serves ``version`` if given, else the pinned version, else
    the latest complete one; polls every ``poll_s`` seconds."""

    def __init__(self, workdir: str, name: str = DEFAULTS.model_name, version: str | None = None,
                 poll_s: float = DEFAULTS.poll_seconds, max_batch_size: int = DEFAULTS.max_batch_size,
                 window_s: float = DEFAULTS.batch_window_ms / 1000, max_pixels: int = DEFAULTS.max_pixels,
                 on_swap: Callable[[Servable], None] | None = None):
        self.workdir, self.name, self.fixed_version, self.poll_s = workdir, name, version, poll_s
        self.max_batch_size, self.window_s, self.max_pixels = max_batch_size, window_s, max_pixels
        self.on_swap = on_swap
        self.current: Servable | None = None
        self.status: dict[str, dict] = {}  # version -> {"state", "error"} as TF Serving's version status
        self._failed: dict[str, tuple] = {}  # version -> its files when it failed (retried once they change)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._refresh_lock = threading.Lock()

    def wanted(self) -> list[str]:
        """The versions to serve, best first: the fixed or pinned one alone, else newest first."""
        chosen = self.fixed_version or registry.pinned(self.workdir)
        if chosen:
            return [chosen]
        return sorted(training.pushed_versions(self.workdir), key=int, reverse=True)

    def refresh(self) -> None:
        """Serve the best wanted version that is complete and loads; keep the current one if
        none does. Only versions newer than the serving one are looked into."""
        with self._refresh_lock:
            for version in self.wanted():
                if self.current and version == self.current.version:
                    return
                if not registry.is_complete(self.workdir, version):
                    continue  # the Pusher is still copying it, or it is gone
                if version in self._failed and self._failed[version] == self._files(version):
                    continue
                if self._try_load(version):
                    return

    def _try_load(self, version: str) -> bool:
        self.status[version] = {"state": "LOADING", "error": ""}
        started = time.perf_counter()
        try:
            servable = load(self.workdir, version, self.max_batch_size, self.window_s, self.max_pixels)
        except Exception as err:
            self._failed[version] = self._files(version)
            self.status[version] = {"state": "END", "error": f"{type(err).__name__}: {err}"}
            serving = f"still serving version {self.current.version}" if self.current else "nothing is served"
            log.error("version %s of model %r failed to load (%s: %s); %s", version, self.name,
                      type(err).__name__, str(err).splitlines()[0] if str(err) else "", serving)
            return False
        old, self.current = self.current, servable
        self._failed.pop(version, None)
        self.status[version] = {"state": "AVAILABLE", "error": ""}
        log.info("serving version %s of model %r (%s classes: %s; loaded in %.1f s)%s", version, self.name,
                 len(servable.classes), ", ".join(servable.classes), time.perf_counter() - started,
                 f", replacing version {old.version}" if old else "")
        if self.on_swap:
            self.on_swap(servable)
        if old:
            self.status[old.version] = {"state": "END", "error": ""}
            threading.Thread(target=old.retire, name=f"retire-{old.version}", daemon=True).start()
        return True

    def _files(self, version: str) -> tuple:
        fsys, path = fs.filesystem(registry.version_dir(self.workdir, version))
        try:
            return tuple(sorted((k, v.get("size")) for k, v in fsys.find(path, detail=True).items()))
        except FileNotFoundError:
            return ()

    def start(self) -> None:
        """Load what there is to serve now, then follow the registry in a background thread."""
        self.refresh()
        self._thread = threading.Thread(target=self._watch, name="registry-watch", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.refresh()
            except Exception:  # a registry that cannot be listed for a moment (network): try again next poll
                log.exception("could not read the registry %s", registry.registry_dir(self.workdir))

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()
        if self.current:
            self.current.retire()

    def servable(self, version: str | None = None) -> Servable:
        """The serving version (or ``version``, if that is the one serving); NotServed otherwise."""
        current = self.current
        if current is None:
            raise NotServed(f"model {self.name!r} has no version loaded yet: {registry.registry_dir(self.workdir)} "
                            f"holds no complete version that loads")
        if version is not None and version != current.version:
            raise NotServed(f"version {version} of model {self.name!r} is not served (serving version "
                            f"{current.version}; 'hotdog models pin {version}' serves it)")
        return current

    async def predict(self, serialized: list[bytes], version: str | None = None):
        """Softmax rows for ``serialized`` tf.Examples and the Servable that computed them, all
        from one version; a swap while the request waits sends it to the new version."""
        import asyncio

        while True:
            servable = self.servable(version)
            try:
                future = servable.batcher.submit(serialized)
            except BatcherClosed:
                await asyncio.sleep(0)
                continue
            return await asyncio.wrap_future(future), servable

