"""The download state machine: states, which transitions are legal, and who holds quota."""

PENDING = "pending"
DOWNLOADING = "downloading"
PAUSED = "paused"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
EXPIRED = "expired"  # its licence ran out: the record stays, the file and its quota are gone

STATUSES = (PENDING, DOWNLOADING, PAUSED, COMPLETED, FAILED, CANCELLED, EXPIRED)

# Downloads in these states count against MAX_ACTIVE_DOWNLOADS_PER_USER.
ACTIVE = frozenset({PENDING, DOWNLOADING})

# Downloads in these states hold their file size against the user's quota; starting the
# same title and quality again returns such a download instead of making a second.
RESERVING = frozenset({PENDING, DOWNLOADING, PAUSED, COMPLETED})

# transition name: (states it may start from, state it leads to)
TRANSITIONS = {
    "claim": ({PENDING}, DOWNLOADING),
    "complete": ({DOWNLOADING}, COMPLETED),
    "requeue": ({DOWNLOADING}, PENDING),
    "fail": ({DOWNLOADING}, FAILED),
    "pause": ({PENDING, DOWNLOADING}, PAUSED),
    "resume": ({PAUSED}, PENDING),
    "cancel": ({PENDING, DOWNLOADING, PAUSED}, CANCELLED),
    "retry": ({FAILED, CANCELLED}, PENDING),
    "expire": ({COMPLETED}, EXPIRED),
    "renew": ({EXPIRED}, PENDING),  # a renewed expired download is fetched again
}


def sources(transition):
    """States from which `transition` is legal."""
    return TRANSITIONS[transition][0]


def target(transition):
    """State that `transition` leads to."""
    return TRANSITIONS[transition][1]


def moves_quota(transition):
    """Whether `transition` reserves or releases quota (so it changes the ledger with the row)."""
    return bool(sources(transition) & RESERVING) != (target(transition) in RESERVING)


def reserves_quota(transition):
    """Whether `transition` takes the download's reservation again (so it holds its title again)."""
    return moves_quota(transition) and target(transition) in RESERVING


def releases_quota(transition):
    """Whether `transition` gives the download's reservation back (and so its stored bytes)."""
    return moves_quota(transition) and target(transition) not in RESERVING


def quota_change(transition, file_size_bytes):
    """Bytes to add to (positive) or release from (negative) the ledger."""
    if not moves_quota(transition):
        return 0
    return file_size_bytes if target(transition) in RESERVING else -file_size_bytes
