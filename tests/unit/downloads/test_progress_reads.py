"""The hand-written progress SELECT reads what Peewee's query reads, on SQLite and PostgreSQL."""

import pytest

from downloads_app.downloads import progress_reads, user_actions
from downloads_app.downloads.models import Download
from downloads_app.downloads.refusals import DownloadNotFound
from downloads_app.infra.event_hub import PROGRESS_FIELDS

BIG = 2**63 - 1  # the byte columns are BIGINT


@pytest.fixture
def downloads(app_ctx, movie):
    rows = [
        Download.create(user_id="alice", content="movie", quality="720p", status="pending", file_size_bytes=1000),
        Download.create(
            user_id="alice",
            content="movie",
            quality="480p",
            status="downloading",
            progress=40,
            downloaded_bytes=BIG // 100 * 40,
            file_size_bytes=BIG,
        ),
        Download.create(user_id="bob", content="movie", quality="720p", status="completed", file_size_bytes=7),
    ]
    return {row.user_id + "-" + row.quality: row.id for row in rows}


def test_it_reads_the_fields_peewee_reads(downloads):
    for key, download_id in downloads.items():
        user_id = key.split("-")[0]
        read = progress_reads.progress_of(user_id, download_id)
        record = user_actions.get_download(user_id, download_id)
        assert read._fields == PROGRESS_FIELDS
        assert tuple(read) == tuple(getattr(record, name) for name in PROGRESS_FIELDS)
        assert all(type(value) is type(getattr(record, name)) for name, value in read._asdict().items())


def test_another_users_download_and_an_unknown_id_are_not_found(downloads):
    with pytest.raises(DownloadNotFound):
        progress_reads.progress_of("bob", downloads["alice-720p"])
    with pytest.raises(DownloadNotFound):
        progress_reads.progress_of("alice", "0" * 32)
