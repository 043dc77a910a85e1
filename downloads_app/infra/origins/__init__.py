"""Fetching a file from its origin (HTTP(S) or S3) from a byte offset on, for resumable transfers."""

import re
from collections import namedtuple
from urllib.parse import urlsplit

DEFAULT_CHUNK_SIZE = 64 * 1024
# "bytes 100-999/1000" for a part, "bytes */1000" with a 416 (ASCII digits: \d takes others).
CONTENT_RANGE = re.compile(r"bytes (?:(?P<start>[0-9]+)-[0-9]+|\*)/(?P<total>[0-9]+)")
SIZE = re.compile(r"[0-9]+")
# What the database's byte columns (BIGINT) hold.
MAX_SIZE = 2**63 - 1


# What the origin says of a file without sending it.
FileFacts = namedtuple("FileFacts", "size content_type validator")


class OriginError(Exception):
    """The origin failed; `permanent` when asking again cannot help (missing, forbidden)."""

    def __init__(self, message, *, permanent):
        super().__init__(message)
        self.permanent = permanent


def checked_size(location, value, what):
    """`value` (an origin's `what`: a header's text or an int) as a size, or a permanent OriginError:
    a negative size would lower the quota's used bytes."""
    if isinstance(value, int) and not isinstance(value, bool):
        size = value
    elif isinstance(value, str) and SIZE.fullmatch(value):
        size = int(value)
    else:
        raise OriginError(f"{location}: {what} {value!r} is not a size", permanent=True)
    if not 0 <= size <= MAX_SIZE:
        raise OriginError(f"{location}: {what} {value!r} is not a size", permanent=True)
    return size


def is_permanent(status):
    """Whether an HTTP error status will be the same next time: a client error, not a timeout or throttling."""
    return 400 <= status < 500 and status not in (408, 429)


class OriginResponse:
    """The file from byte `start` on, as the origin sends it; close it, or use it in `with`.

    `start` is the offset asked for when the origin honoured it, 0 when it sends the whole
    file (a new version, or no Range support). `validator` names the version being sent.
    """

    def __init__(self, *, start, total_size, validator, content_type, body=(), close=lambda: None):
        self.start = start
        self.total_size = total_size
        self.validator = validator
        self.content_type = content_type
        self._body = body
        self._close = close

    def chunks(self):
        """The body, chunk by chunk; OriginError(permanent=False) if it ends before `total_size`."""
        received = self.start
        for chunk in self._body:
            received += len(chunk)
            yield chunk
        if received < self.total_size:
            raise OriginError(f"the body ended at byte {received} of {self.total_size}", permanent=False)

    def close(self):
        self._close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _transport(location):
    scheme = urlsplit(location).scheme
    # Imported here: both modules import this one, and boto3 is slow to import.
    if scheme in ("http", "https"):
        from downloads_app.infra.origins import http_origin as transport
    elif scheme == "s3":
        from downloads_app.infra.origins import s3_origin as transport
    else:
        raise ValueError(f"no transport for {location!r}: expected http://, https:// or s3://")
    return transport


def describe(location, *, connect_timeout, read_timeout, allow_private_redirects=False):
    """FileFacts of `location` (HTTP HEAD, S3 HeadObject): nothing of the body is sent. Raises OriginError.

    HTTP redirects to another host are followed only to public addresses, unless
    `allow_private_redirects`.
    """
    return _transport(location).describe(
        location,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        allow_private_redirects=allow_private_redirects,
    )


def open_range(
    location,
    offset=0,
    validator=None,
    *,
    connect_timeout,
    read_timeout,
    chunk_size=DEFAULT_CHUNK_SIZE,
    allow_private_redirects=False,
):
    """Ask the origin for `location` from byte `offset` on, if it is still the version `validator` names.

    Without a validator the ranged request is unconditional. Redirects as for `describe`.
    Raises OriginError.
    """
    return _transport(location).open_range(
        location,
        offset,
        validator,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        chunk_size=chunk_size,
        allow_private_redirects=allow_private_redirects,
    )
