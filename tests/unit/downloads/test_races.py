"""Pause, resume, cancel, retry and delete fired at running transfers: nothing lost, resurrected or miscounted."""

import random
import threading
import time
from collections import Counter

from downloads_app.downloads import lifecycle
from downloads_app.downloads.models import Download, StorageLedger
from support import wait_until

# Deletes are rare so that most of the loop races the worker on live downloads.
ACTIONS = {"pause": 4, "resume": 4, "cancel": 1, "retry": 2, "delete": 0.2}
# Each thread fires at least MIN_ACTIONS, then goes on until this many actions were accepted in
# all (the race was real, whatever the machine's speed), and at most MAX_ACTIONS.
ACCEPTED_ENOUGH = 60
MIN_ACTIONS, MAX_ACTIONS = 150, 750


def test_lifecycle_actions_racing_the_worker_keep_every_invariant(app, worker, auth, movie, titles, configure):
    configure(DOWNLOAD_SIMULATED_SECONDS=0.3)
    # One user fires hundreds of writes on purpose: lift the per-user rate limits.
    configure(RATELIMIT_START="100000 per minute", RATELIMIT_WRITES="100000 per minute")
    client = app.test_client()
    ids = [
        client.post("/api/downloads/start", json={"content_id": c, "quality": q}, headers=auth()).json["download"]["id"]
        for c in ("movie", *titles(2))
        for q in ("480p", "720p", "1080p")
    ]
    assert len(set(ids)) == 9  # nine distinct downloads, none a repeat of another
    history = {download_id: [] for download_id in ids}
    sampling = threading.Event()
    sampling.set()

    def sample():
        with app.app_context():
            while sampling.is_set():
                for row in Download.select(Download.id, Download.downloaded_bytes, Download.progress):
                    seen = history[row.id]
                    if not seen or seen[-1] != (row.downloaded_bytes, row.progress):
                        seen.append((row.downloaded_bytes, row.progress))

    answers = []

    def fire(seed, count):
        rng, own_client = random.Random(seed), app.test_client()
        for fired in range(count):
            if fired >= MIN_ACTIONS and sum(code == 200 for _, code in answers) >= ACCEPTED_ENOUGH:
                return
            download_id = rng.choice(ids)
            action = rng.choices(list(ACTIONS), weights=list(ACTIONS.values()))[0]
            if action == "delete":
                response = own_client.delete(f"/api/downloads/{download_id}", headers=auth())
            else:
                response = own_client.post(f"/api/downloads/{download_id}/{action}", headers=auth())
            answers.append((action, response.status_code))

    started_at = time.monotonic()
    sampler = threading.Thread(target=sample)
    sampler.start()
    firing = [threading.Thread(target=fire, args=(seed, MAX_ACTIONS)) for seed in (1, 2)]
    for thread in firing:
        thread.start()
    for thread in firing:
        thread.join()

    def settled():
        with app.app_context():
            return not Download.select().where(Download.status.in_([lifecycle.PENDING, lifecycle.DOWNLOADING])).exists()

    fired_for = time.monotonic() - started_at
    wait_until(settled, timeout=60, message="every download to settle")
    print(f"\n{len(answers)} actions in {fired_for:.1f}s:", Counter(answers))
    sampling.clear()
    sampler.join()

    assert {code for _, code in answers} <= {200, 404, 409}, answers
    assert sum(code == 200 for _, code in answers) >= ACCEPTED_ENOUGH  # the race was real, not all refusals
    with app.app_context():
        rows = list(Download.select())
        for row in rows:
            assert row.status in lifecycle.STATUSES
            assert 0 <= row.downloaded_bytes <= row.file_size_bytes
            if row.status == lifecycle.COMPLETED:
                assert (row.downloaded_bytes, row.progress) == (row.file_size_bytes, 100)
        reserved = sum(row.file_size_bytes for row in rows if row.status in lifecycle.RESERVING)
        assert StorageLedger.get_by_id("alice").used_bytes == reserved
    for download_id, seen in history.items():
        # Progress never goes back, but for a retry: it starts over from zero, as cancel and
        # failure removed the bytes. Each stretch between two such restarts only grows.
        starts = [i for i, sample in enumerate(seen) if sample == (0, 0)] or [0]
        for begin, end in zip(starts, [*starts[1:], len(seen)], strict=True):
            stretch = seen[begin:end]
            assert stretch == sorted(stretch), f"progress of {download_id} went backwards: {seen}"
        assert seen[: starts[0]] == sorted(seen[: starts[0]]), f"progress of {download_id} went backwards: {seen}"
