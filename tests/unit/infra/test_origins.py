"""Fetching and resuming files from real origins: nginx, a server that cuts bodies short, moto's S3."""

import hashlib
import io
import os
import socket
import time
from contextlib import ExitStack, closing

import pytest

from downloads_app.infra.origins import OriginError, OriginResponse, describe, open_range, s3_origin
from support import free_port
from support.origins import MOTO, NGINX, FixedAnswers, FlakyOrigin, MotoS3, Nginx, empty_file, redirect_to, require

SIZE = 3 * 1024 * 1024 + 123
TIMEOUTS = {"connect_timeout": 2, "read_timeout": 5}


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def fetch(location, offset=0, validator=None, **timeouts):
    """(response, body) of one request; the response is closed."""
    with open_range(location, offset, validator, **{**TIMEOUTS, **timeouts}) as response:
        return response, b"".join(response.chunks())


def fetch_part(location, size):
    """The first `size` bytes or a little more (to the end of a chunk) and the validator: a worker stopped mid-file."""
    received = b""
    with open_range(location, **TIMEOUTS) as response:
        for chunk in response.chunks():
            received += chunk
            if len(received) >= size:
                return received, response.validator


@pytest.fixture
def movie(tmp_path):
    """A file of random bytes in an origin's root directory."""
    (tmp_path / "media").mkdir()
    path = tmp_path / "media" / "movie.mp4"
    path.write_bytes(os.urandom(SIZE))
    return path


@pytest.fixture
def nginx(movie):
    require(NGINX, "nginx is not installed (Debian: apt-get install nginx-light)")
    with Nginx(movie.parent) as server:
        yield server


@pytest.fixture
def answering():
    """answering({path: (status, headers)}) -> base URL of a local server giving those answers, empty bodies."""
    with ExitStack() as servers:
        yield lambda answers: servers.enter_context(FixedAnswers(answers)).url


@pytest.fixture(scope="module")
def moto_server():
    require(MOTO, "moto is not installed (pip install 'moto[server]')")
    with MotoS3() as server:
        yield server


@pytest.fixture
def s3(moto_server, monkeypatch):
    for name, value in {**MotoS3.CREDENTIALS, "S3_ENDPOINT_URL": moto_server.endpoint_url}.items():
        monkeypatch.setenv(name, value)
    return moto_server


# ---------------------------------------------------------------- HTTP, nginx


def test_http_fetches_the_whole_file(nginx, movie):
    response, body = fetch(f"{nginx.url}/movie.mp4")

    assert (response.start, response.total_size, response.content_type) == (0, SIZE, "video/mp4")
    assert response.validator.startswith('"')  # nginx's strong ETag
    assert sha256(body) == sha256(movie.read_bytes())


def test_http_resumes_the_same_version_from_the_offset(nginx, movie):
    url = f"{nginx.url}/movie.mp4"
    part, validator = fetch_part(url, SIZE // 2)

    response, rest = fetch(url, len(part), validator)

    assert (response.start, response.total_size, response.validator) == (len(part), SIZE, validator)
    assert sha256(part + rest) == sha256(movie.read_bytes())


def test_http_sends_the_whole_new_version_when_the_file_changed(nginx, movie):
    url = f"{nginx.url}/movie.mp4"
    part, validator = fetch_part(url, SIZE // 2)
    new_content = os.urandom(SIZE + 1000)
    movie.write_bytes(new_content)

    response, body = fetch(url, len(part), validator)

    assert (response.start, response.total_size) == (0, len(new_content))
    assert response.validator != validator
    assert sha256(body) == sha256(new_content)


def test_http_offset_at_the_end_is_a_complete_file(nginx):
    url = f"{nginx.url}/movie.mp4"
    validator = fetch(url)[0].validator

    response, body = fetch(url, SIZE, validator)

    assert (response.start, response.total_size, body) == (SIZE, SIZE, b"")


def test_http_missing_file_is_a_permanent_error(nginx):
    with pytest.raises(OriginError) as raised:
        open_range(f"{nginx.url}/missing.mp4", **TIMEOUTS)

    assert raised.value.permanent


def test_http_describe_asks_with_head_and_sends_no_body(nginx, movie):
    facts = describe(f"{nginx.url}/movie.mp4", **TIMEOUTS)
    fetch(f"{nginx.url}/movie.mp4")

    assert (facts.size, facts.content_type) == (SIZE, "video/mp4") and facts.validator.startswith('"')
    access = (nginx.dir / "access.log").read_text().splitlines()
    assert access[0].split('"')[1].startswith("HEAD /movie.mp4") and access[0].split('"')[2].split()[1] == "0"
    with pytest.raises(OriginError) as raised:
        describe(f"{nginx.url}/missing.mp4", **TIMEOUTS)
    assert raised.value.permanent


# ---------------------------------------------------------------- HTTP, cut and stalled bodies


def test_describe_falls_back_to_get_where_head_is_not_served(movie):
    with FlakyOrigin(movie, max_bytes=1_000_000) as origin:  # it answers HEAD with 501
        facts = describe(origin.url, **TIMEOUTS)

    assert facts.size == SIZE and facts.validator.startswith('"')


def test_cut_body_is_a_temporary_error_from_chunks(movie):
    received = b""
    with FlakyOrigin(movie, max_bytes=1_000_000) as origin, open_range(origin.url, **TIMEOUTS) as response:
        assert response.total_size == SIZE
        with pytest.raises(OriginError) as raised:
            for chunk in response.chunks():
                received += chunk

    assert not raised.value.permanent
    # urllib3 drops the last short read when it sees the cut: a prefix, less than a chunk short.
    assert 1_000_000 - 64 * 1024 < len(received) <= 1_000_000
    assert received == movie.read_bytes()[: len(received)]


def test_body_shorter_than_the_file_is_a_temporary_error():
    # Origins that send a part without Content-Length (chunked) end it cleanly: only the count tells.
    response = OriginResponse(start=5, total_size=10, validator=None, content_type=None, body=[b"abc"])

    with pytest.raises(OriginError) as raised:
        list(response.chunks())

    assert not raised.value.permanent


def test_resuming_after_each_cut_finishes_the_file_byte_exact(movie):
    received, validator, requests = b"", None, 0
    with FlakyOrigin(movie, max_bytes=1_000_000) as origin:
        while len(received) < SIZE:
            requests += 1
            with open_range(origin.url, len(received), validator, **TIMEOUTS) as response:
                assert response.start == len(received)
                validator = response.validator
                try:
                    for chunk in response.chunks():
                        received += chunk
                except OriginError as error:
                    assert not error.permanent

    assert requests >= 4  # 3 MiB + 123 bytes, at most 1 MB at a time
    assert sha256(received) == sha256(movie.read_bytes())


def test_server_that_never_answers_times_out(unused_tcp_port):
    with closing(socket.socket()) as listener:
        listener.bind(("127.0.0.1", unused_tcp_port))
        listener.listen()  # connections wait in the backlog: nobody accepts them or answers
        began = time.monotonic()
        with pytest.raises(OriginError) as raised:
            open_range(f"http://127.0.0.1:{unused_tcp_port}/movie.mp4", connect_timeout=1, read_timeout=1)

    assert not raised.value.permanent
    assert time.monotonic() - began < 1 + 2


def test_body_that_stalls_times_out(movie):
    with (
        FlakyOrigin(movie, max_bytes=100_000, stall=True) as origin,
        open_range(origin.url, connect_timeout=1, read_timeout=1) as response,
    ):
        began = time.monotonic()
        with pytest.raises(OriginError) as raised:
            for _ in response.chunks():
                pass

    assert not raised.value.permanent
    assert time.monotonic() - began < 1 + 2


# ---------------------------------------------------------------- S3, moto


def test_s3_fetches_the_whole_object(s3, movie):
    location = s3.put("movies", "full/movie.mp4", movie.read_bytes())

    response, body = fetch(location)

    assert (response.start, response.total_size) == (0, SIZE)
    assert response.validator.startswith('"')  # S3 ETags come quoted, kept as they are
    assert sha256(body) == sha256(movie.read_bytes())


def test_s3_resumes_the_same_version_from_the_offset(s3, movie):
    location = s3.put("movies", "resumed/movie.mp4", movie.read_bytes())
    part, validator = fetch_part(location, SIZE // 2)

    response, rest = fetch(location, len(part), validator)

    assert (response.start, response.total_size, response.validator) == (len(part), SIZE, validator)
    assert sha256(part + rest) == sha256(movie.read_bytes())


def test_s3_sends_the_whole_new_version_when_the_object_changed(s3, movie):
    location = s3.put("movies", "changed/movie.mp4", movie.read_bytes())
    part, validator = fetch_part(location, SIZE // 2)
    new_content = os.urandom(SIZE - 1000)
    s3.put("movies", "changed/movie.mp4", new_content)

    response, body = fetch(location, len(part), validator)

    assert (response.start, response.total_size) == (0, len(new_content))
    assert response.validator != validator
    assert sha256(body) == sha256(new_content)


def test_s3_offset_at_the_end_is_a_complete_object(s3, movie):
    location = s3.put("movies", "complete/movie.mp4", movie.read_bytes())
    validator = fetch(location)[0].validator

    response, body = fetch(location, SIZE, validator)

    assert (response.start, response.total_size, body) == (SIZE, SIZE, b"")


def test_s3_missing_key_is_a_permanent_error(s3):
    s3.put("movies", "other.mp4", b"x")

    with pytest.raises(OriginError) as raised:
        open_range("s3://movies/missing.mp4", **TIMEOUTS)

    assert raised.value.permanent


def test_s3_describe_uses_head_object(s3, movie):
    location = s3.put("movies", "described.mp4", movie.read_bytes())

    facts = describe(location, **TIMEOUTS)

    assert facts.size == SIZE and facts.validator == fetch(location)[0].validator
    with pytest.raises(OriginError) as raised:
        describe("s3://movies/missing.mp4", **TIMEOUTS)
    assert raised.value.permanent


# ---------------------------------------------------------------- sizes no file can have

NOT_SIZES = ["-5", "abc", "", str(2**63)]


@pytest.mark.parametrize("length", NOT_SIZES)
def test_http_a_content_length_that_is_no_size_is_a_permanent_error(answering, length):
    base = answering({"/movie.mp4": (200, {"Content-Length": length, "Connection": "close"})})
    for call in (describe, open_range):
        with pytest.raises(OriginError) as raised:
            call(f"{base}/movie.mp4", **TIMEOUTS)
        assert raised.value.permanent


@pytest.mark.parametrize("total", ["-5", "²", str(2**63)])
def test_http_a_content_range_that_is_no_size_is_a_permanent_error(answering, total):
    headers = {"Content-Range": f"bytes 10-20/{total}", "Content-Length": "0", "Connection": "close"}
    base = answering({"/movie.mp4": (206, headers)})
    with pytest.raises(OriginError) as raised:
        open_range(f"{base}/movie.mp4", 10, None, **TIMEOUTS)
    assert raised.value.permanent


class FakeS3:
    """A client whose answers say a size no file can have."""

    def __init__(self, length, content_range=None):
        self.answer = {"ContentLength": length, "Body": io.BytesIO()}
        if content_range is not None:
            self.answer["ContentRange"] = content_range

    def head_object(self, **request):
        return self.answer

    def get_object(self, **request):
        return self.answer


@pytest.mark.parametrize(
    "client",
    [FakeS3(-5), FakeS3(2**63), FakeS3(0, content_range="bytes 1-2/-5"), FakeS3(0, content_range="nonsense")],
    ids=["negative", "too large", "negative range", "malformed range"],
)
def test_s3_a_size_that_is_no_size_is_a_permanent_error(monkeypatch, client):
    monkeypatch.setattr(s3_origin, "_client", lambda *timeouts: client)
    calls = [open_range] if "ContentRange" in client.answer else [describe, open_range]
    for call in calls:
        with pytest.raises(OriginError) as raised:
            call("s3://movies/movie.mp4", **TIMEOUTS)
        assert raised.value.permanent


# ---------------------------------------------------------------- redirects


@pytest.fixture
def redirecting(answering):
    """(URL that redirects to another server on 127.0.0.1, that server's file URL)."""
    target = answering({"/movie.mp4": empty_file()})
    first = answering({"/movie.mp4": redirect_to(f"{target}/movie.mp4")})
    return f"{first}/movie.mp4", f"{target}/movie.mp4"


def test_a_redirect_to_a_loopback_address_is_refused_by_default(redirecting):
    url, _ = redirecting
    for call in (describe, open_range):
        with pytest.raises(OriginError, match="not a public address") as raised:
            call(url, **TIMEOUTS)
        assert raised.value.permanent


def test_a_redirect_to_a_private_address_is_followed_when_allowed(redirecting):
    url, _ = redirecting
    assert describe(url, **TIMEOUTS, allow_private_redirects=True).size == 0
    response, body = fetch(url, allow_private_redirects=True)
    assert (response.total_size, body) == (0, b"")


def test_a_redirect_within_the_origin_the_admin_chose_is_followed(answering):
    base = answering({"/old.mp4": redirect_to("/movie.mp4"), "/movie.mp4": empty_file()})
    assert describe(f"{base}/old.mp4", **TIMEOUTS).size == 0


def test_endless_redirects_are_a_permanent_error(answering):
    base = answering({"/loop.mp4": redirect_to("/loop.mp4")})
    with pytest.raises(OriginError, match="redirects") as raised:
        describe(f"{base}/loop.mp4", **TIMEOUTS)
    assert raised.value.permanent


# ---------------------------------------------------------------- no origin


def test_refused_connection_is_a_temporary_error():
    with pytest.raises(OriginError) as raised:
        open_range(f"http://127.0.0.1:{free_port()}/movie.mp4", **TIMEOUTS)

    assert not raised.value.permanent


def test_unreachable_s3_endpoint_is_a_temporary_error(monkeypatch):
    for name, value in {**MotoS3.CREDENTIALS, "S3_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}.items():
        monkeypatch.setenv(name, value)

    with pytest.raises(OriginError) as raised:
        open_range("s3://movies/movie.mp4", **TIMEOUTS)

    assert not raised.value.permanent


def test_unknown_scheme_is_refused():
    with pytest.raises(ValueError):
        open_range("ftp://example.com/movie.mp4", **TIMEOUTS)
