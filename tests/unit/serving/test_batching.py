"""Server-side batching: concurrent requests share a batch, a bad request fails alone, closing drains."""
import threading
import time

import pytest

from tasks.errors import HotdogInputError
from tasks.serving.batching import Batcher, BatcherClosed


def doubling(seen):
    def run(inputs):
        seen.append(list(inputs))
        time.sleep(0.02)  # a model's work: requests arriving meanwhile wait for the next batch
        return [2 * x for x in inputs]
    return run


def test_requests_within_the_window_run_as_one_batch_and_get_their_own_rows():
    seen = []
    batcher = Batcher(doubling(seen), None, max_batch_size=64, window_s=0.2)
    futures = [batcher.submit([k, k + 100]) for k in range(5)]
    assert [f.result(5) for f in futures] == [[2 * k, 2 * (k + 100)] for k in range(5)]
    assert len(seen) == 1 and sorted(seen[0]) == sorted(x for k in range(5) for x in (k, k + 100))
    batcher.close()


def test_a_batch_never_exceeds_the_maximum_size():
    seen = []
    batcher = Batcher(doubling(seen), None, max_batch_size=4, window_s=0.2)
    futures = [batcher.submit([k]) for k in range(10)]
    assert [f.result(5) for f in futures] == [[2 * k] for k in range(10)]
    assert max(len(batch) for batch in seen) <= 4 and batcher.largest_batch <= 4
    batcher.close()


def test_a_request_failing_its_check_fails_alone():
    def check(requests):
        return [HotdogInputError("instance 0: not_an_image") if "bad" in request else None for request in requests]

    batcher = Batcher(lambda inputs: [x.upper() for x in inputs], check, max_batch_size=32, window_s=0.2)
    good, bad, other = batcher.submit(["a"]), batcher.submit(["bad"]), batcher.submit(["b", "c"])
    assert good.result(5) == ["A"] and other.result(5) == ["B", "C"]
    with pytest.raises(HotdogInputError, match="not_an_image"):
        bad.result(5)
    batcher.close()


def test_a_model_error_reaches_every_request_of_its_batch_and_the_next_batch_still_runs():
    calls = []

    def run(inputs):
        calls.append(inputs)
        if len(calls) == 1:
            raise RuntimeError("out of memory")
        return inputs

    batcher = Batcher(run, None, max_batch_size=32, window_s=0.2)
    first = [batcher.submit([1]), batcher.submit([2])]
    for future in first:
        with pytest.raises(RuntimeError, match="out of memory"):
            future.result(5)
    assert batcher.submit([3]).result(5) == [3]
    batcher.close()


def test_close_finishes_what_was_submitted_then_refuses_more():
    batcher = Batcher(doubling([]), None, max_batch_size=32, window_s=0.001)
    futures = [batcher.submit([k]) for k in range(20)]
    closer = threading.Thread(target=batcher.close)
    closer.start()
    closer.join(10)
    assert [f.result(0) for f in futures] == [[2 * k] for k in range(20)]
    with pytest.raises(BatcherClosed):
        batcher.submit([1])


def test_a_failing_check_fails_its_batch_and_the_batcher_goes_on():
    calls = []

    def check(requests):
        calls.append(requests)
        if len(calls) == 1:
            raise MemoryError("decoder out of memory")
        return [None] * len(requests)

    batcher = Batcher(lambda inputs: inputs, check, max_batch_size=32, window_s=0.05)
    with pytest.raises(MemoryError):
        batcher.submit([1]).result(5)
    assert batcher.submit([2]).result(5) == [2]
    batcher.close()
