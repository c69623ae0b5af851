"""Objects alive when a job starts are left out of collections during it, and handed back after."""
import gc
import weakref

from tfx_pipeline import heap


class Node:
    def __init__(self):
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_objects_of_the_start_are_frozen_within_and_collected_after():
    gc.collect()
    assert gc.get_freeze_count() == 0
    held = [Node()]
    of_the_start = weakref.ref(held[0])
    with heap.frozen():
        with heap.frozen():  # nested: still frozen after the inner exit
            pass
        assert gc.get_freeze_count() > 0
        held.clear()
        made_within = Node()
        of_the_job = weakref.ref(made_within)
        del made_within
        gc.collect()
        assert of_the_job() is None  # the job's own garbage is collected as usual
        assert of_the_start() is not None  # frozen
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert of_the_start() is None  # handed back, then collected


def test_it_decorates_a_function_and_hands_back_on_error():
    @heap.frozen()
    def job():
        assert gc.get_freeze_count() > 0
        raise ValueError("bad input")

    try:
        job()
    except ValueError:
        pass
    assert gc.get_freeze_count() == 0
