"""What a domain call needs from its process: the settings and the adapters built from them."""

from dataclasses import dataclass, field

from downloads_app.config import Settings
from downloads_app.infra.broker import TransferQueue
from downloads_app.infra.event_hub import EventPublisher
from downloads_app.infra.group_commit import GroupCommit
from downloads_app.infra.stored_files import StoredFiles


@dataclass(frozen=True)
class Runtime:
    """Passed as the first argument of every domain call that needs settings, Redis or the disk."""

    settings: Settings
    queue: TransferQueue
    events: EventPublisher
    files: StoredFiles
    # The starts of this process's concurrent requests, recorded together (downloads/starts.py).
    start_batches: GroupCommit = field(default_factory=GroupCommit)


def build_runtime(settings, broker):
    """The runtime of a process whose Dramatiq broker is `broker` (its Redis client publishes events)."""
    return Runtime(
        settings=settings,
        queue=TransferQueue(broker, settings.downloads_queue),
        events=EventPublisher(broker.client),
        files=StoredFiles(settings.storage_dir, settings.storage_free_margin_bytes),
    )
