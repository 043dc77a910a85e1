"""STORAGE_DIR: a relative setting is the project root's, for the worker that writes and the API that serves."""

import os
import time

import jwt

from downloads_app import create_app
from downloads_app.config import PROJECT_ROOT, load_settings
from downloads_app.downloads.models import Content, Download
from support.databases import migrated_sqlite_url
from support.environment import REDIS_URL, TEST_JWT_SECRET


def test_a_relative_storage_dir_is_resolved_against_the_project_root():
    assert load_settings({"STORAGE_DIR": "var/other-storage"})["STORAGE_DIR"] == str(PROJECT_ROOT / "var/other-storage")
    assert load_settings({"STORAGE_DIR": "/srv/storage"})["STORAGE_DIR"] == "/srv/storage"


def test_the_file_of_a_relative_storage_dir_is_served(tmp_path, monkeypatch):
    storage = tmp_path / "storage"
    monkeypatch.setenv("STORAGE_DIR", os.path.relpath(storage, PROJECT_ROOT))
    monkeypatch.chdir(tmp_path)  # not the directory the setting is relative to
    app = create_app(
        {
            "TESTING": True,
            "DATABASE_URL": migrated_sqlite_url(tmp_path),
            "REDIS_URL": REDIS_URL,
            "JWT_SECRET": TEST_JWT_SECRET,
        }
    )
    try:
        with app.app_context():
            Content.create(id="movie", title="A Movie", duration_seconds=1, qualities="480p")
            download = Download.create(
                user_id="alice", content="movie", quality="480p", status="completed", file_size_bytes=5, sha256="a" * 64
            )
            path = app.extensions["runtime"].files.of(download).final_path
        path.parent.mkdir(parents=True)
        path.write_bytes(b"bytes")
        assert path.is_relative_to(storage)
        token = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, TEST_JWT_SECRET, algorithm="HS256")
        response = app.test_client().get(
            f"/api/downloads/{download.id}/file", headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 200 and response.data == b"bytes"
        response.close()
    finally:
        app.extensions["event_hub"].close()
        app.extensions["broker"].client.close()
