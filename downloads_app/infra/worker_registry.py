"""The registry of live worker processes: each beats into Redis, operators read it."""

import json
import os
import socket
import time

REGISTRY_KEY = "downloads:workers"
# Entries silent for this long are dropped from the registry when it is read.
FORGET_AFTER_SECONDS = 3600


def identity(threads):
    """This process's entry: host, pid, threads, start time."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "threads": threads, "started_at": time.time()}


def beat(client, worker):
    """Record that `worker` (an `identity`) is alive now."""
    key = f"{worker['host']}:{worker['pid']}"
    client.hset(REGISTRY_KEY, key, json.dumps({**worker, "last_beat": time.time()}))


def forget(client, worker):
    client.hdel(REGISTRY_KEY, f"{worker['host']}:{worker['pid']}")


def registered(client, alive_within):
    """Every known worker with `alive` (beat within `alive_within` seconds), newest beat first."""
    now = time.time()
    workers = []
    for key, raw in client.hgetall(REGISTRY_KEY).items():
        worker = json.loads(raw)
        if now - worker["last_beat"] > FORGET_AFTER_SECONDS:
            client.hdel(REGISTRY_KEY, key)
            continue
        worker["alive"] = now - worker["last_beat"] <= alive_within
        workers.append(worker)
    return sorted(workers, key=lambda w: -w["last_beat"])
