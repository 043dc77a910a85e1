"""The progress body the route builds without marshmallow is byte for byte the one ProgressSchema dumped."""

import pytest
from flask import jsonify

from downloads_app.downloads import progress_reads
from downloads_app.downloads.lifecycle import STATUSES
from downloads_app.downloads.models import Download
from downloads_app.infra.event_hub import progress_fields
from downloads_app.web.schemas import ProgressSchema

BIG = 2**63 - 1


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize(("downloaded", "size"), [(0, 0), (0, 1000), (416_625_000, 416_625_000), (BIG // 3, BIG)])
def test_the_body_is_the_schemas_dump_of_the_record(app_ctx, movie, status, downloaded, size):
    record = Download.create(
        user_id="alice",
        content="movie",
        quality="720p",
        status=status,
        progress=downloaded * 100 // size if size else 0,
        downloaded_bytes=downloaded,
        file_size_bytes=size,
    )
    read = progress_reads.progress_of("alice", record.id)
    body = progress_fields(read)
    with app_ctx.test_request_context():
        before = jsonify(ProgressSchema().dump(progress_fields(record)))  # what the route answered until now
        now = app_ctx.json.response(body)
        assert now.get_data() == before.get_data()
        assert now.mimetype == before.mimetype == "application/json"
    assert ProgressSchema().dump(body) == body
    assert {name: type(value) for name, value in body.items()} == {
        "success": bool,
        "id": str,
        "status": str,
        "progress": int,
        "downloaded_bytes": str,
        "file_size_bytes": str,
    }
