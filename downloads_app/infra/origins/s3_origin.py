"""Fetching an object from S3 or an S3-compatible store with boto3, resuming with Range and IfMatch."""

import os
import threading
from urllib.parse import urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError, IncompleteReadError
from botocore.exceptions import ConnectionError as EndpointUnreachable

from downloads_app.infra.origins import (
    CONTENT_RANGE,
    FileFacts,
    OriginError,
    OriginResponse,
    checked_size,
    is_permanent,
)

# Refused, reset or timed-out connections and cut bodies; not, say, missing credentials.
NETWORK_ERRORS = (EndpointUnreachable, HTTPClientError, IncompleteReadError)

_clients = {}
_clients_lock = threading.Lock()


def _client(connect_timeout, read_timeout):
    """A client per endpoint and timeouts, shared by all threads: creating one is slow."""
    endpoint_url = os.environ.get("S3_ENDPOINT_URL") or None
    key = (endpoint_url, connect_timeout, read_timeout)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = boto3.session.Session().client(
                "s3",
                endpoint_url=endpoint_url,
                region_name=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
                # One attempt: the job queue does the retrying.
                config=Config(connect_timeout=connect_timeout, read_timeout=read_timeout, retries={"max_attempts": 1}),
            )
        return _clients[key]


def _bucket_and_key(location):
    parts = urlsplit(location)
    return {"Bucket": parts.netloc, "Key": parts.path.lstrip("/")}


def describe(location, *, connect_timeout, read_timeout, allow_private_redirects=False):
    """The object's size, type and ETag from HeadObject."""
    del allow_private_redirects  # botocore follows only S3's own redirects, to the bucket's region
    try:
        answer = _client(connect_timeout, read_timeout).head_object(**_bucket_and_key(location))
    except ClientError as error:
        status = error.response["ResponseMetadata"]["HTTPStatusCode"]
        raise OriginError(f"{location}: {error}", permanent=is_permanent(status)) from error
    except NETWORK_ERRORS as error:
        raise OriginError(f"{location}: {error}", permanent=False) from error
    size = checked_size(location, answer["ContentLength"], "ContentLength")
    return FileFacts(size=size, content_type=answer.get("ContentType"), validator=answer.get("ETag"))


def open_range(
    location, offset, validator, *, connect_timeout, read_timeout, chunk_size, allow_private_redirects=False
):
    """The object at s3://bucket/key from `offset` on, or all of it when its ETag is no longer `validator`."""
    del allow_private_redirects  # as in describe
    request = _bucket_and_key(location)
    if offset:
        request["Range"] = f"bytes={offset}-"
        if validator:
            request["IfMatch"] = validator
    try:
        answer = _client(connect_timeout, read_timeout).get_object(**request)
    except ClientError as error:
        status = error.response["ResponseMetadata"]["HTTPStatusCode"]
        if status == 416 and offset and error.response["Error"].get("ActualObjectSize") == str(offset):
            return OriginResponse(start=offset, total_size=offset, validator=validator, content_type=None)
        if status == 412 or (status == 416 and offset):
            # Another version (its ETag changed, or it is shorter than the part already fetched): fetch it all.
            return open_range(
                location, 0, None, connect_timeout=connect_timeout, read_timeout=read_timeout, chunk_size=chunk_size
            )
        raise OriginError(f"{location}: {error}", permanent=is_permanent(status)) from error
    except NETWORK_ERRORS as error:
        raise OriginError(f"{location}: {error}", permanent=False) from error
    try:
        start, total_size = _span(location, answer)
    except OriginError:
        answer["Body"].close()
        raise
    return OriginResponse(
        start=start,
        total_size=total_size,
        validator=answer.get("ETag"),
        content_type=answer.get("ContentType"),
        body=_body(location, answer["Body"], chunk_size),
        close=answer["Body"].close,
    )


def _span(location, answer):
    """(start, total size) of the body GetObject answered."""
    if "ContentRange" not in answer:
        return 0, checked_size(location, answer["ContentLength"], "ContentLength")
    match = CONTENT_RANGE.fullmatch(answer["ContentRange"])
    if not match or match["start"] is None:
        raise OriginError(f"{location}: ContentRange {answer['ContentRange']!r}", permanent=True)
    return int(match["start"]), checked_size(location, match["total"], "ContentRange")


def _body(location, stream, chunk_size):
    try:
        yield from stream.iter_chunks(chunk_size)
    except NETWORK_ERRORS as error:
        raise OriginError(f"{location}: {error}", permanent=False) from error
