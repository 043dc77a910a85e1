"""The catalogue against real databases: sizes, where files come from, sources measured at nginx, admin changes."""

import dataclasses
import os
import re

import pytest

from downloads_app.downloads import catalogue, user_actions
from downloads_app.downloads.models import Content, ContentSource
from downloads_app.downloads.refusals import (
    ContentExists,
    ContentInUse,
    ContentNotFound,
    OriginUnusable,
    QualityNotOffered,
    TitleNotDownloadable,
)
from support import free_port, wait_until
from support.origins import NGINX, Nginx, require

# MOVIE: 1000 s. Bitrates (kbps) 480p 1556, 720p 3333, 1080p 6667; bytes = seconds × kbps × 125.
SIZES = {"480p": 194_500_000, "720p": 416_625_000, "1080p": 833_375_000}


@pytest.fixture
def rt(app_ctx, movie):
    return app_ctx.extensions["runtime"]


def with_transport(settings, transport, origin_url=""):
    return dataclasses.replace(settings, download_transport=transport, download_origin_url=origin_url)


@pytest.fixture
def nginx(tmp_path):
    require(NGINX, "nginx is not installed (Debian: apt-get install nginx-light)")
    media = tmp_path / "media"
    media.mkdir()
    (media / "movie.mp4").write_bytes(os.urandom(123_457))
    (media / "movie.bin").write_bytes(os.urandom(1001))
    with Nginx(media) as server:
        yield server


def logged_heads(nginx):
    log = nginx.dir / "access.log"
    return [line for line in log.read_text().splitlines() if '"HEAD /' in line] if log.exists() else []


def unreachable_url(path="movie.mp4"):
    return f"http://127.0.0.1:{free_port()}/{path}"  # nothing listens there


# ---------------------------------------------------------------- sizes


def test_file_size_is_duration_times_bitrate(rt):
    assert {q: catalogue.file_size_bytes(rt.settings, 1000, q) for q in SIZES} == SIZES
    assert catalogue.file_size_bytes(rt.settings, 1, "360p") == 667 * 125
    assert catalogue.offered_qualities(rt.settings) == ["360p", "480p", "720p", "1080p", "2160p"]


def test_file_size_follows_the_configured_bitrates(rt, configure):
    rt = configure(QUALITY_BITRATES_KBPS={"low": 8, "high": 80})
    assert catalogue.file_size_bytes(rt.settings, 60, "high") == 60 * 80 * 125
    assert catalogue.offered_qualities(rt.settings) == ["low", "high"]


def test_sizes_are_estimated_unless_a_source_has_a_size(rt):
    catalogue.set_source(rt.settings, "movie", "720p", unreachable_url(), size_bytes=12_345)
    [content] = catalogue.list_contents()  # its sources prefetched
    assert catalogue.sizes(rt.settings, content) == {"480p": SIZES["480p"], "720p": 12_345, "1080p": SIZES["1080p"]}
    fetched = catalogue.get_content("movie")  # not prefetched: the same answer
    assert catalogue.sizes(rt.settings, fetched) == {"480p": SIZES["480p"], "720p": 12_345, "1080p": SIZES["1080p"]}


def test_list_contents_orders_by_title_then_id(rt):
    catalogue.create_content(rt.settings, "b-id", "Another", 10, ["480p"])
    catalogue.create_content(rt.settings, "a-id", "Another", 10, ["480p"])
    catalogue.create_content(rt.settings, "z-id", "Zed", 10, ["480p"])
    assert [c.id for c in catalogue.list_contents()] == ["movie", "a-id", "b-id", "z-id"]  # "A Movie" first


# ---------------------------------------------------------------- files_of and source_for


def test_files_of_without_a_source_is_the_estimate_and_simulated(rt):
    [(size, source, content)] = catalogue.files_of(rt.settings, [("movie", "1080p")])
    assert (size, source, content.id) == (SIZES["1080p"], None, "movie")


def test_files_of_uses_the_size_of_the_catalogues_source(rt):
    catalogue.set_source(rt.settings, "movie", "720p", unreachable_url(), size_bytes=98_765, sha256="ab" * 32)
    [(size, source, _)] = catalogue.files_of(rt.settings, [("movie", "720p")])
    assert size == 98_765
    assert (source.quality, source.size_bytes, source.sha256) == ("720p", 98_765, "ab" * 32)


@pytest.mark.parametrize("quality", ["2160p", "360p", "4k", ""])
def test_files_of_refuses_a_quality_the_title_is_not_offered_in(rt, quality):
    [refused] = catalogue.files_of(rt.settings, [("movie", quality)])
    assert isinstance(refused, QualityNotOffered)
    assert refused.reason == "quality_not_offered"
    assert refused.message == f"'A Movie' is offered in 480p, 720p, 1080p, not {quality!r}."


def test_files_of_answers_each_title_and_quality_of_a_batch_in_its_place(rt):
    catalogue.set_source(rt.settings, "movie", "720p", unreachable_url(), size_bytes=98_765)
    wanted = [("movie", "1080p"), ("nope", "720p"), ("movie", "720p"), ("movie", "4k"), ("movie", "1080p")]
    files = catalogue.files_of(rt.settings, wanted)
    assert files[0][:2] == files[4][:2] == (SIZES["1080p"], None)
    assert isinstance(files[1], ContentNotFound) and files[1].message == "No title with id 'nope' in the catalogue."
    assert files[2][0] == 98_765
    assert isinstance(files[3], QualityNotOffered)


def test_source_for_is_none_when_simulated(rt):
    assert catalogue.source_for(with_transport(rt.settings, "simulated", "http://ignored"), "movie", "720p", 5) is None


@pytest.mark.parametrize(
    "transport, origin_url, location",
    [
        ("http", "http://origin.example/films", "http://origin.example/films/movie/720p"),
        ("http", "https://origin.example/films/", "https://origin.example/films/movie/720p"),
        ("s3", "s3://media-bucket/prefix/", "s3://media-bucket/prefix/movie/720p"),
    ],
)
def test_source_for_names_the_origin_url_of_the_transport(rt, transport, origin_url, location):
    source = catalogue.source_for(with_transport(rt.settings, transport, origin_url), "movie", "720p", 4242)
    assert (source.location, source.quality, source.size_bytes, source.sha256) == (location, "720p", 4242, None)
    assert source.id is None  # described, not saved
    assert ContentSource.select().count() == 0


@pytest.mark.parametrize("transport", ["simulated", "http", "s3"])
def test_the_catalogues_source_takes_precedence_over_the_transport(rt, transport):
    saved = catalogue.set_source(rt.settings, "movie", "720p", "s3://catalogue/movie.mp4", size_bytes=77)
    settings = with_transport(rt.settings, transport, "s3://elsewhere" if transport == "s3" else "http://elsewhere")
    source = catalogue.source_for(settings, "movie", "720p", 4242)
    assert (source.id, source.location, source.size_bytes) == (saved.id, "s3://catalogue/movie.mp4", 77)
    # The other qualities have no source of their own.
    other = catalogue.source_for(settings, "movie", "480p", 4242)
    assert other is None if transport == "simulated" else other.location.endswith("/movie/480p")


def test_source_for_refuses_an_origin_url_the_transport_cannot_use(rt):
    with pytest.raises(OriginUnusable) as refused:
        catalogue.source_for(with_transport(rt.settings, "http", "s3://media"), "movie", "720p", 1)
    assert refused.value.reason == "origin_unusable"
    assert refused.value.message == (
        "DOWNLOAD_TRANSPORT='http' needs DOWNLOAD_ORIGIN_URL starting with http:// or https://, not 's3://media'"
    )


# ---------------------------------------------------------------- transport_problem


@pytest.mark.parametrize(
    "transport, origin_url",
    [
        ("simulated", ""),
        ("simulated", "ftp://anything"),
        ("http", "http://o"),
        ("http", "https://o"),
        ("s3", "s3://b"),
    ],
)
def test_transports_that_work(rt, transport, origin_url):
    assert catalogue.transport_problem(with_transport(rt.settings, transport, origin_url)) is None


@pytest.mark.parametrize(
    "transport, origin_url, problem",
    [
        ("ftp", "ftp://x", "DOWNLOAD_TRANSPORT='ftp'; expected one of simulated, http, s3"),
        ("HTTP", "http://o", "DOWNLOAD_TRANSPORT='HTTP'; expected one of simulated, http, s3"),
        ("http", "", "DOWNLOAD_TRANSPORT='http' needs DOWNLOAD_ORIGIN_URL starting with http:// or https://, not ''"),
        (
            "http",
            "s3://media",
            "DOWNLOAD_TRANSPORT='http' needs DOWNLOAD_ORIGIN_URL starting with http:// or https://, not 's3://media'",
        ),
        ("s3", "", "DOWNLOAD_TRANSPORT='s3' needs DOWNLOAD_ORIGIN_URL starting with s3://, not ''"),
        (
            "s3",
            "https://bucket.example",
            "DOWNLOAD_TRANSPORT='s3' needs DOWNLOAD_ORIGIN_URL starting with s3://, not 'https://bucket.example'",
        ),
    ],
)
def test_transport_problems(rt, transport, origin_url, problem):
    assert catalogue.transport_problem(with_transport(rt.settings, transport, origin_url)) == problem


# ---------------------------------------------------------------- set_source and delete_source


def test_a_source_without_a_size_is_measured_at_the_origin(rt, nginx):
    source = catalogue.set_source(rt.settings, "movie", "720p", f"{nginx.url}/movie.mp4")
    assert (source.size_bytes, source.content_type, source.sha256) == (123_457, "video/mp4", None)
    other = catalogue.set_source(rt.settings, "movie", "480p", f"{nginx.url}/movie.bin", sha256="cd" * 32)
    assert (other.size_bytes, other.content_type, other.sha256) == (1001, "application/octet-stream", "cd" * 32)
    stored = ContentSource.get(ContentSource.content == "movie", ContentSource.quality == "720p")
    assert (stored.location, stored.size_bytes, stored.content_type) == (f"{nginx.url}/movie.mp4", 123_457, "video/mp4")
    # nginx logs a request once it has answered it: wait for both lines.
    head_requests = wait_until(
        lambda: len(heads := logged_heads(nginx)) >= 2 and heads, timeout=10, message="nginx's access log"
    )
    assert len(head_requests) == 2 and all('" 200 ' in line for line in head_requests), head_requests


def test_a_content_type_given_with_the_source_is_kept_over_the_origins(rt, nginx):
    source = catalogue.set_source(rt.settings, "movie", "720p", f"{nginx.url}/movie.mp4", content_type="video/x-own")
    assert (source.size_bytes, source.content_type) == (123_457, "video/x-own")


def test_a_source_with_a_size_is_recorded_without_asking_the_origin(rt):
    source = catalogue.set_source(rt.settings, "movie", "720p", unreachable_url(), size_bytes=5)
    assert (source.size_bytes, source.content_type) == (5, None)


def test_setting_a_source_again_replaces_it(rt, nginx):
    first = catalogue.set_source(
        rt.settings, "movie", "720p", unreachable_url(), size_bytes=5, sha256="ab" * 32, content_type="video/old"
    )
    again = catalogue.set_source(rt.settings, "movie", "720p", f"{nginx.url}/movie.mp4")
    assert again.id == first.id and ContentSource.select().count() == 1
    assert (again.location, again.size_bytes, again.sha256, again.content_type) == (
        f"{nginx.url}/movie.mp4",
        123_457,
        None,
        "video/mp4",
    )


@pytest.mark.parametrize("path, problem", [("nope.mp4", "HTTP 404"), ("", "HTTP 403")])
def test_a_source_the_origin_does_not_serve_is_refused(rt, nginx, path, problem):
    with pytest.raises(OriginUnusable) as refused:
        catalogue.set_source(rt.settings, "movie", "720p", f"{nginx.url}/{path}")
    assert refused.value.message.startswith("The origin did not describe the file: ")
    assert problem in refused.value.message
    assert ContentSource.select().count() == 0


def test_a_source_at_an_unreachable_origin_is_refused(rt):
    with pytest.raises(OriginUnusable, match="The origin did not describe the file"):
        catalogue.set_source(rt.settings, "movie", "720p", unreachable_url())
    assert ContentSource.select().count() == 0


def test_set_source_refuses_an_unknown_title_or_a_quality_not_offered(rt):
    with pytest.raises(ContentNotFound, match=re.escape("No title with id 'nope' in the catalogue.")):
        catalogue.set_source(rt.settings, "nope", "720p", unreachable_url(), size_bytes=5)
    with pytest.raises(QualityNotOffered):
        catalogue.set_source(rt.settings, "movie", "2160p", unreachable_url(), size_bytes=5)
    assert ContentSource.select().count() == 0


def test_delete_source(rt):
    catalogue.set_source(rt.settings, "movie", "720p", unreachable_url(), size_bytes=5)
    catalogue.set_source(rt.settings, "movie", "480p", unreachable_url(), size_bytes=6)
    catalogue.delete_source("movie", "720p")
    assert [s.quality for s in ContentSource.select()] == ["480p"]
    with pytest.raises(ContentNotFound, match=re.escape("No source for 'movie' at '720p'.")):
        catalogue.delete_source("movie", "720p")
    with pytest.raises(ContentNotFound, match="No title with id 'nope'"):
        catalogue.delete_source("nope", "480p")


# ---------------------------------------------------------------- create, update, delete


def test_create_content_keeps_the_services_order_of_qualities(rt):
    created = catalogue.create_content(rt.settings, "new", "New", 60, ["1080p", "360p", "720p", "1080p"])
    assert created.qualities == "360p,720p,1080p"
    stored = Content.get_by_id("new")
    assert (stored.title, stored.duration_seconds, stored.quality_list) == ("New", 60, ["360p", "720p", "1080p"])


def test_create_content_refuses_unknown_qualities(rt):
    with pytest.raises(QualityNotOffered) as refused:
        catalogue.create_content(rt.settings, "new", "New", 60, ["720p", "4k", "8k"])
    assert refused.value.message == (
        "Unknown qualities ['4k', '8k']; the service offers ['360p', '480p', '720p', '1080p', '2160p']."
    )
    assert Content.get_or_none(Content.id == "new") is None


def test_create_content_refuses_an_id_in_use(rt):
    with pytest.raises(ContentExists, match=re.escape("A title with id 'movie' already exists.")):
        catalogue.create_content(rt.settings, "movie", "Another", 60, ["480p"])
    assert Content.get_by_id("movie").title == "A Movie"  # the first is kept
    assert catalogue.create_content(rt.settings, "after", "After", 60, ["480p"]).id == "after"  # the connection is fine


def test_update_content(rt):
    updated = catalogue.update_content(rt.settings, "movie", title="Renamed", qualities=["2160p", "480p"])
    assert (updated.title, updated.qualities) == ("Renamed", "480p,2160p")
    stored = Content.get_by_id("movie")
    assert (stored.title, stored.duration_seconds, stored.qualities) == ("Renamed", 1000, "480p,2160p")
    catalogue.update_content(rt.settings, "movie", duration_seconds=20)
    assert (Content.get_by_id("movie").duration_seconds, Content.get_by_id("movie").qualities) == (20, "480p,2160p")


def test_update_content_refuses_unknown_qualities_and_changes_nothing(rt):
    with pytest.raises(QualityNotOffered, match=r"Unknown qualities \['4k'\]"):
        catalogue.update_content(rt.settings, "movie", title="Renamed", qualities=["480p", "4k"])
    stored = Content.get_by_id("movie")
    assert (stored.title, stored.qualities) == ("A Movie", "480p,720p,1080p")


def test_update_content_refuses_an_unknown_title(rt):
    with pytest.raises(ContentNotFound):
        catalogue.update_content(rt.settings, "nope", title="x")


def test_delete_content_removes_the_title_and_its_sources(rt):
    catalogue.set_source(rt.settings, "movie", "720p", unreachable_url(), size_bytes=5)
    catalogue.delete_content("movie")
    assert Content.get_or_none(Content.id == "movie") is None
    assert ContentSource.select().count() == 0
    with pytest.raises(ContentNotFound):
        catalogue.delete_content("movie")


def test_delete_content_refuses_a_title_with_downloads(rt):
    catalogue.set_source(rt.settings, "movie", "720p", unreachable_url(), size_bytes=5)
    download, _ = user_actions.start_download(rt, "alice", "movie", "480p")
    user_actions.cancel(rt, "alice", download.id)  # even a cancelled download keeps it
    with pytest.raises(ContentInUse) as refused:
        catalogue.delete_content("movie")
    assert refused.value.message == "'A Movie' still has downloads; it can be removed once they are deleted."
    assert Content.get_or_none(Content.id == "movie") is not None
    assert ContentSource.select().count() == 1  # nothing of it was removed
    user_actions.delete_download(rt, "alice", download.id)
    catalogue.delete_content("movie")
    assert Content.get_or_none(Content.id == "movie") is None


def test_files_of_refuses_a_title_that_may_not_be_downloaded(rt):
    Content.update(downloadable=False).where(Content.id == "movie").execute()
    [refused] = catalogue.files_of(rt.settings, [("movie", "720p")])
    assert isinstance(refused, TitleNotDownloadable)
    assert refused.message == "'A Movie' cannot be downloaded, only streamed."
