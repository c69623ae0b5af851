"""Server-side batching, as TF Serving's: requests that arrive within a short window run
through the model together, up to a maximum batch size, on one thread.

A request is a list of inputs; its future receives the list of outputs for them, or the
exception raised for it. ``run_batch(inputs) -> outputs`` sees the inputs of every request
of the batch, concatenated; ``check(requests) -> [error or None]`` vets the batch's requests
first (one error or None per request), so one bad request never fails the others.
"""
from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import Future
from typing import Callable, Sequence

_STOP = object()


class BatcherClosed(RuntimeError):
    """The batcher stopped taking requests (its model is being retired): submit to its successor."""


class Batcher:
    def __init__(self, run_batch: Callable[[list], Sequence],
                 check: Callable[[list[list]], list[Exception | None]] | None, max_batch_size: int,
                 window_s: float, name: str = "batcher"):
        self._run_batch, self._check = run_batch, check
        self.max_batch_size, self.window_s = max_batch_size, window_s
        self._queue: queue.Queue = queue.Queue()
        self._lock, self._closed = threading.Lock(), False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()
        self.batches = 0  # how many batches ran, for tests and the benchmark
        self.largest_batch = 0

    def submit(self, inputs: list) -> Future:
        """Queue one request; BatcherClosed once :meth:`close` has begun."""
        future: Future = Future()
        with self._lock:
            if self._closed:
                raise BatcherClosed()
            self._queue.put((inputs, future))
        return future

    def close(self) -> None:
        """Finish every request already submitted, then stop the thread."""
        with self._lock:
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, size, stop = [first], len(first[0]), False
            deadline = time.monotonic() + self.window_s
            while size < self.max_batch_size:
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
                size += len(item[0])
            self._serve(batch)
            if stop:
                return

    def _serve(self, batch: list) -> None:
        accepted = []
        try:
            errors = self._check([inputs for inputs, _ in batch]) if self._check else [None] * len(batch)
        except Exception as err:  # the check itself failed: every request of the batch gets why
            errors = [err] * len(batch)
        for (inputs, future), error in zip(batch, errors):
            if error is not None:
                future.set_exception(error)
            else:
                accepted.append((inputs, future))
        if not accepted:
            return
        inputs = [x for request, _ in accepted for x in request]
        try:
            outputs = self._run_batch(inputs)
        except Exception as err:  # a model failure reaches every request of the batch
            for _, future in accepted:
                future.set_exception(err)
            return
        self.batches += 1
        self.largest_batch = max(self.largest_batch, len(inputs))
        start = 0
        for request, future in accepted:
            future.set_result(list(outputs[start:start + len(request)]))
            start += len(request)
