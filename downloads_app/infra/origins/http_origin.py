"""Fetching a file over HTTP(S) with requests, resuming with Range and If-Range."""

import ipaddress
import socket
from urllib.parse import urljoin, urlsplit

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
REDIRECTS = (301, 302, 303, 307, 308)
MAX_REDIRECTS = 5


def describe(url, *, connect_timeout, read_timeout, allow_private_redirects=False):
    """The file's size, type and version from a HEAD request (a GET where HEAD is not served)."""
    timeouts = {"connect_timeout": connect_timeout, "read_timeout": read_timeout}
    response = _request("HEAD", url, IDENTITY, allow_private_redirects, stream=False, **timeouts)
    with response:
        if response.status_code in NO_HEAD:
            with open_range(
                url, 0, None, **timeouts, chunk_size=1, allow_private_redirects=allow_private_redirects
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


def open_range(url, offset, validator, *, connect_timeout, read_timeout, chunk_size, allow_private_redirects=False):
    """The file at `url` from `offset` on, or all of it when it is no longer the version `validator` names."""
    headers = dict(IDENTITY)
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if validator:
            headers["If-Range"] = validator
    response = _request(
        "GET",
        url,
        headers,
        allow_private_redirects,
        stream=True,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
    )
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
            url,
            0,
            None,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            chunk_size=chunk_size,
            allow_private_redirects=allow_private_redirects,
        )
    return OriginResponse(
        start=start,
        total_size=total_size,
        validator=response.headers.get("ETag") or response.headers.get("Last-Modified"),
        content_type=response.headers.get("Content-Type"),
        body=_body(url, response, chunk_size),
        close=response.close,
    )


def _request(method, url, headers, allow_private_redirects, *, stream, connect_timeout, read_timeout):
    """The answer at `url` after its redirects, followed here so that each one is checked: the
    origin the admin registered may send requests to other hosts only at public addresses
    (unless allowed), or it could reach the service's own network (SSRF)."""
    origin = _host_and_port(url)
    for _ in range(MAX_REDIRECTS + 1):
        try:
            response = requests.request(
                method,
                url,
                headers=headers,
                stream=stream,
                allow_redirects=False,
                timeout=(connect_timeout, read_timeout),
            )
        except requests.RequestException as error:
            raise OriginError(f"{url}: {error}", permanent=False) from error
        if response.status_code not in REDIRECTS or "Location" not in response.headers:
            return response
        response.close()
        url = urljoin(url, response.headers["Location"])
        if urlsplit(url).scheme not in ("http", "https"):
            raise OriginError(f"{url}: redirected to a scheme other than http(s)", permanent=True)
        if not allow_private_redirects and _host_and_port(url) != origin:
            _check_public(url)
    raise OriginError(f"{url}: more than {MAX_REDIRECTS} redirects", permanent=True)


def _host_and_port(url):
    parts = urlsplit(url)
    return parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)


def _check_public(url):
    """OriginError unless every address `url`'s host resolves to is public (not loopback,
    link-local, private, shared, reserved or multicast)."""
    host, port = _host_and_port(url)
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)}
    except (socket.gaierror, UnicodeError) as error:
        raise OriginError(f"{url}: {error}", permanent=False) from error
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])  # without an IPv6 zone
        if ip.version == 6 and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        if not ip.is_global or ip.is_multicast:
            raise OriginError(
                f"{url}: redirected to {ip}, not a public address (DOWNLOAD_ALLOW_PRIVATE_REDIRECTS allows it)",
                permanent=True,
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
