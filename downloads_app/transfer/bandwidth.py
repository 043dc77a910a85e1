"""Bandwidth limits of transfers: one download's, and all of a worker process's together."""

import threading
import time


class Throttle:
    """Keeps whoever calls `spend` to `rate` bytes a second on average (0: no limit); thread-safe."""

    def __init__(self, rate):
        self.rate = rate
        self._lock = threading.Lock()
        self._free_at = time.monotonic()

    def spend(self, nbytes):
        """Account for `nbytes` just moved; sleep until they fit the rate."""
        if not self.rate:
            return
        with self._lock:
            now = time.monotonic()
            self._free_at = max(self._free_at, now) + nbytes / self.rate
            wait = self._free_at - now
        time.sleep(wait)


_process_throttles = {}
_process_lock = threading.Lock()


def process_throttle(rate):
    """The one Throttle that every transfer of this worker process shares, for `rate`."""
    with _process_lock:
        return _process_throttles.setdefault(rate, Throttle(rate))
