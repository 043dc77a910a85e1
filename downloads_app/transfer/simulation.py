"""The simulated transfer (DOWNLOAD_TRANSPORT=simulated): ten equal steps, no bytes moved."""

import time

from downloads_app.transfer.handle import HEARTBEAT_SECONDS

SIMULATED_STEPS = 10


def _wait(seconds, heartbeat):
    """Sleep `seconds`, calling `heartbeat()` every HEARTBEAT_SECONDS; False as soon as it is."""
    deadline = time.monotonic() + seconds
    while deadline - time.monotonic() > HEARTBEAT_SECONDS:
        time.sleep(HEARTBEAT_SECONDS)
        if not heartbeat():
            return False
    left = deadline - time.monotonic()
    if left > 0:  # even sleep(0) gives the GIL away, and takes a switch interval to get it back
        time.sleep(left)
    return True


def simulate(handle, seconds):
    """Pretend to fetch the file in ten equal steps over `seconds`; False when told to stop.

    Starts at the step after the bytes already recorded, so a resumed or redelivered job
    continues where the last run stopped. The last step's bytes are recorded by the completion.
    """
    size = handle.file_size_bytes
    step_seconds = seconds / SIMULATED_STEPS
    done = handle.downloaded_bytes
    first_step = done * SIMULATED_STEPS // size + 1 if size else SIMULATED_STEPS
    for step in range(first_step, SIMULATED_STEPS + 1):
        if not _wait(step_seconds, lambda done=done: handle.report(done)):  # a heartbeat: same bytes
            return False
        if step == SIMULATED_STEPS:
            return handle.moved_all()
        done = size * step // SIMULATED_STEPS
        if not handle.report(done):
            return False
    return True
