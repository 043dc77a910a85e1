"""GroupCommit: concurrent callers' items batched, each caller answered with its own outcome."""

import threading

import pytest

from downloads_app.infra.group_commit import GroupCommit
from support import wait_until


class Recorder:
    """A run_batch that records its batches; the first batch waits until released."""

    def __init__(self):
        self.batches = []
        self.first_started = threading.Event()
        self.release_first = threading.Event()

    def __call__(self, items):
        self.batches.append(list(items))
        if len(self.batches) == 1:
            self.first_started.set()
            self.release_first.wait(timeout=30)
        return [ValueError(item) if item < 0 else item * 10 for item in items]


def submit_in_threads(group, run_batch, items, answers):
    def call(item):
        try:
            answers[item] = group.submit(run_batch, item)
        except Exception as exc:  # the caller's own outcome, kept for the assertions
            answers[item] = exc

    threads = [threading.Thread(target=call, args=(item,)) for item in items]
    for thread in threads:
        thread.start()
    return threads


def test_a_lone_caller_runs_its_item_alone_at_once():
    group, batches = GroupCommit(), []
    assert group.submit(lambda items: batches.append(items) or [len(items)], "only") == 1
    assert batches == [["only"]]


def test_items_submitted_while_a_batch_runs_go_together_into_the_next():
    group, run_batch, answers = GroupCommit(), Recorder(), {}
    [first] = submit_in_threads(group, run_batch, [1], answers)
    assert run_batch.first_started.wait(timeout=30)
    waiting = submit_in_threads(group, run_batch, [2, 3, -4, 5], answers)
    wait_until(lambda: len(group._waiting) == 4, 30, message="four callers waiting")
    run_batch.release_first.set()
    for thread in [first, *waiting]:
        thread.join(timeout=30)
    assert run_batch.batches[0] == [1]
    assert sorted(run_batch.batches[1]) == [-4, 2, 3, 5] and len(run_batch.batches) == 2
    assert {k: v for k, v in answers.items() if k > 0} == {1: 10, 2: 20, 3: 30, 5: 50}
    assert isinstance(answers[-4], ValueError)  # only that caller's item failed


def test_a_batch_is_at_most_max_batch_items():
    group, run_batch, answers = GroupCommit(max_batch=2), Recorder(), {}
    [first] = submit_in_threads(group, run_batch, [1], answers)
    assert run_batch.first_started.wait(timeout=30)
    waiting = submit_in_threads(group, run_batch, [2, 3, 4, 5, 6], answers)
    wait_until(lambda: len(group._waiting) == 5, 30, message="five callers waiting")
    run_batch.release_first.set()
    for thread in [first, *waiting]:
        thread.join(timeout=30)
    assert [len(batch) for batch in run_batch.batches] == [1, 2, 2, 1]
    assert answers == {n: n * 10 for n in range(1, 7)}


def test_a_batch_that_raises_fails_each_of_its_callers_and_the_next_batch_still_runs():
    group = GroupCommit()

    def broken(items):
        raise ConnectionError("database away")

    with pytest.raises(ConnectionError):
        group.submit(broken, 1)
    assert group.submit(lambda items: [item + 1 for item in items], 1) == 2
