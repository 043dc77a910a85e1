"""Fetching a file over HTTP(S) with requests, resuming with Range and If-Range."""

import requests

from downloads_app.infra.origins import (
    CONTENT_RANGE,
    FileFacts,
    OriginError,
    OriginResponse,
    checked_size,
    is_permanent,
)

# identity: offsets count the bytes of the file as stored, not of a compressed encoding.
IDENTITY = {"Accept-Encoding": "identity"}


# Answers of origins that do not do HEAD: ask with a GET instead, closed after the headers.
NO_HEAD = (405, 501)


def describe(url, *, connect_timeout, read_timeout):
    """The file's size, type and version from a HEAD request (a GET where HEAD is not served)."""
    try:
        response = requests.head(url, headers=IDENTITY, allow_redirects=True, timeout=(connect_timeout, read_timeout))
    except requests.RequestException as error:
        raise OriginError(f"{url}: {error}", permanent=False) from error
    with response:
        if response.status_code in NO_HEAD:
            with open_range(
                url, 0, None, connect_timeout=connect_timeout, read_timeout=read_timeout, chunk_size=1
            ) as answer:
                return FileFacts(answer.total_size, answer.content_type, answer.validator)
        if response.status_code != 200:
            raise OriginError(f"{url}: HTTP {response.status_code}", permanent=is_permanent(response.status_code))
        if "Content-Length" not in response.headers:
            raise OriginError(f"{url}: the origin did not say the file's size", permanent=True)
        return FileFacts(
            size=checked_size(url, response.headers["Content-Length"], "Content-Length"),
            content_type=response.headers.get("Content-Type"),
            validator=response.headers.get("ETag") or response.headers.get("Last-Modified"),
        )


def open_range(url, offset, validator, *, connect_timeout, read_timeout, chunk_size):
    """The file at `url` from `offset` on, or all of it when it is no longer the version `validator` names."""
    headers = dict(IDENTITY)
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if validator:
            headers["If-Range"] = validator
    try:
        response = requests.get(url, headers=headers, stream=True, timeout=(connect_timeout, read_timeout))
    except requests.RequestException as error:
        raise OriginError(f"{url}: {error}", permanent=False) from error
    try:
        start, total_size = _span(url, response, offset)
    except BaseException:
        response.close()
        raise
    if response.status_code == 416:
        response.close()
        if total_size == offset:
            return OriginResponse(start=offset, total_size=total_size, validator=validator, content_type=None)
        # The file is shorter than the part already fetched: a new version, fetch it all.
        return open_range(
            url, 0, None, connect_timeout=connect_timeout, read_timeout=read_timeout, chunk_size=chunk_size
        )
    return OriginResponse(
        start=start,
        total_size=total_size,
        validator=response.headers.get("ETag") or response.headers.get("Last-Modified"),
        content_type=response.headers.get("Content-Type"),
        body=_body(url, response, chunk_size),
        close=response.close,
    )


def _span(url, response, offset):
    """(start, total size) of the body; a 416 to a ranged request is the empty part at `offset`."""
    status = response.status_code
    if status == 200:
        if "Content-Length" not in response.headers:
            raise OriginError(f"{url}: the origin did not say the file's size", permanent=True)
        return 0, checked_size(url, response.headers["Content-Length"], "Content-Length")
    if status not in (206, 416) or (status == 416 and not offset):
        raise OriginError(f"{url}: HTTP {status}", permanent=is_permanent(status))
    content_range = response.headers.get("Content-Range", "")
    match = CONTENT_RANGE.fullmatch(content_range)
    if not match:
        raise OriginError(f"{url}: HTTP {status} with Content-Range {content_range!r}", permanent=True)
    return int(match["start"] or offset), checked_size(url, match["total"], "Content-Range")


def _body(url, response, chunk_size):
    try:
        yield from response.iter_content(chunk_size)
    except requests.RequestException as error:
        raise OriginError(f"{url}: {error}", permanent=False) from error
