"""Group commit: what concurrent callers submit while a batch runs goes into the next batch, run by one of them."""

import threading


class _Slot:
    """One caller's item, its outcome, and the event that wakes the caller."""

    __slots__ = ("error", "finished", "item", "result", "wake")

    def __init__(self, item):
        self.item = item
        self.wake = threading.Event()
        self.finished = False
        self.result = self.error = None

    def outcome(self):
        if self.error is not None:
            raise self.error
        return self.result


class GroupCommit:
    """Batches items of concurrent callers (threads or gevent greenlets) without waiting for more.

    The first caller runs its item alone. Items submitted meanwhile wait; when a batch is done,
    its runner hands over to the oldest waiting caller, which runs everything waiting then (up
    to `max_batch`) as the next batch. So a batch costs one round of I/O however many items it
    holds, and no item waits longer than the batch before it.
    """

    def __init__(self, max_batch=100):
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._waiting = []
        self._running = False

    def submit(self, run_batch, item):
        """`item`'s result from `run_batch(items)`, which returns one outcome per item (a result, or
        an exception to raise to that item's caller); every caller must pass the same `run_batch`.

        If `run_batch` raises, every item of that batch raises it.
        """
        slot = _Slot(item)
        with self._lock:
            self._waiting.append(slot)
            leads = not self._running
            self._running = True
        if not leads:
            try:
                slot.wake.wait()
            except BaseException:  # killed while waiting: not in a batch any more, nor leading one
                self._leave(slot)
                raise
            if slot.finished:
                return slot.outcome()
        try:
            while not slot.finished:
                with self._lock:
                    batch, self._waiting = self._waiting[: self.max_batch], self._waiting[self.max_batch :]
                self._run(run_batch, batch)
        finally:
            self._hand_over()
        return slot.outcome()

    def _hand_over(self):
        """Wake the oldest waiting caller to run the next batch, or note that none runs."""
        with self._lock:
            if self._waiting:
                self._waiting[0].wake.set()
            else:
                self._running = False

    def _leave(self, slot):
        with self._lock:
            woken_to_lead = slot.wake.is_set() and not slot.finished
            if slot in self._waiting:
                self._waiting.remove(slot)
        if woken_to_lead:
            self._hand_over()

    @staticmethod
    def _run(run_batch, batch):
        try:
            outcomes = run_batch([slot.item for slot in batch])
        except BaseException as exc:  # every caller of the batch learns of it, whatever it is
            outcomes = [exc] * len(batch)
        for slot, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                slot.error = outcome
            else:
                slot.result = outcome
            slot.finished = True
            slot.wake.set()
