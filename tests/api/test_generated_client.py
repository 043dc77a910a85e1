"""A client generated from the live /openapi.json by a standard generator works for every operation.

openapi-python-client (httpx + attrs) generates a package from the spec a running server
serves; the test imports it and drives every operation through the generated functions only,
with `raise_on_unexpected_status`, so a status the spec does not list fails, and each answer
is parsed into the generated models (an error into `Error`).
"""

import importlib
import json
import pkgutil
import subprocess
import sys
import threading
from contextlib import contextmanager

import httpx
import pytest
from werkzeug.serving import make_server

from downloads_app import create_app
from downloads_app.web.cli import DEMO_TITLES
from downloads_app.web.schemas import DEMO_CONTENT_ID, DEMO_QUALITY
from support import wait_until
from support.environment import REDIS_URL, TEST_JWT_SECRET

UNKNOWN_ID = "0" * 32


@contextmanager
def serving(app):
    """`app` served over real HTTP on a free port, in a thread: yields its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="live-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()


@contextmanager
def generated_from(base_url, directory, package):
    """Generate a client package `package` from `base_url`/openapi.json into `directory`, import it.

    Yields (the package, the spec it came from, what the generator printed).
    """
    spec = httpx.get(f"{base_url}/openapi.json", timeout=10).json()
    config = directory / "generator.json"
    # No post hooks (they run ruff from PATH): the code is imported, not read.
    config.write_text(json.dumps({"package_name_override": package, "post_hooks": []}))
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "openapi_python_client",
            "generate",
            "--url",
            f"{base_url}/openapi.json",
            "--meta",
            "none",
            "--config",
            str(config),
            "--output-path",
            str(directory / package),
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=directory,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    sys.path.insert(0, str(directory))
    try:
        yield importlib.import_module(package), spec, output
    finally:
        sys.path.remove(str(directory))
        for name in [name for name in sys.modules if name == package or name.startswith(package + ".")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def generated_once(tmp_path_factory):
    """A client generated once for the checks of the spec alone (it depends on no database state)."""
    app = create_app(
        {"TESTING": True, "DATABASE_URL": "sqlite:///:memory:", "REDIS_URL": REDIS_URL, "JWT_SECRET": TEST_JWT_SECRET}
    )
    try:
        with (
            serving(app) as base_url,
            generated_from(base_url, tmp_path_factory.mktemp("client"), "spec_client") as generated,
        ):
            yield generated
    finally:
        app.extensions["event_hub"].close()
        app.extensions["broker"].client.close()


@pytest.fixture
def live_server(app):
    with serving(app) as base_url:
        yield base_url


@pytest.fixture
def generated(live_server, tmp_path):
    with generated_from(live_server, tmp_path, "downloads_client") as generated:
        yield generated


def operation_ids(spec):
    return {
        operation["operationId"]
        for item in spec["paths"].values()
        for method, operation in item.items()
        if method != "parameters"
    }


def generated_operations(package):
    """{operation module name: module} of every module under the package's `api`."""
    api = importlib.import_module(f"{package.__name__}.api")
    found = {}
    for tag in pkgutil.iter_modules(api.__path__):
        tag_package = importlib.import_module(f"{api.__name__}.{tag.name}")
        for operation in pkgutil.iter_modules(tag_package.__path__):
            found[operation.name] = importlib.import_module(f"{tag_package.__name__}.{operation.name}")
    return found


def test_the_generator_makes_a_function_for_every_operation_and_warns_of_nothing(generated_once):
    package, spec, output = generated_once
    assert "Warning" not in output and "Error" not in output, output
    ids = operation_ids(spec)
    operations = generated_operations(package)
    assert set(operations) == ids
    for name, module in operations.items():
        assert callable(module.sync_detailed), name


# Operations with an example in their path, query, headers or body, in an order in which each
# works against `flask demo seed` as Swagger UI's "Try it out" fills it in; between the last two
# the downloads are cleaned up, so the example title can be removed.
EXAMPLE_RUN = (
    "start_download",
    "list_downloads",
    "get_content",
    "update_content",
    "set_source",
    "delete_source",
    "create_content",
    "cleanup_downloads",
    "delete_content",
    "update_account",
    "register_device",  # last: from then on, starts must name a device
)


def filled_in(spec, path, method):
    """(URL, query, headers, JSON body) of an operation, from the examples of its spec alone."""
    item = spec["paths"][path]
    operation = item[method]
    values = {"path": {}, "query": {}, "header": {}}
    for parameter in item.get("parameters", []) + operation.get("parameters", []):
        assert "example" in parameter["schema"], (path, method, parameter["name"])
        values[parameter["in"]][parameter["name"]] = parameter["schema"]["example"]
    body = None
    if "requestBody" in operation:
        name = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
        properties = spec["components"]["schemas"][name]["properties"]
        missing = [field for field, schema in properties.items() if "example" not in schema]
        assert not missing, (path, method, name, missing)
        body = {field: schema["example"] for field, schema in properties.items()}
    return path.format(**values["path"]), values["query"], values["header"], body


def test_every_example_in_the_spec_works_against_the_demo_catalogue(generated_once, app, client, token):
    _, spec, _ = generated_once
    assert app.test_cli_runner().invoke(args=["demo", "seed"]).exit_code == 0
    assert DEMO_CONTENT_ID in {content_id for content_id, _, _ in DEMO_TITLES}
    by_id = {
        operation["operationId"]: (path, method)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
    }
    with_examples = set()
    for operation_id, (path, method) in by_id.items():
        operation = spec["paths"][path][method]
        parameters = spec["paths"][path].get("parameters", []) + operation.get("parameters", [])
        named = [p["name"] for p in parameters]
        random_ids = {"download_id", "device_id"}  # no example can name one (their schemas say where to get one)
        if any(p["name"] in random_ids and p["in"] == "path" for p in parameters):
            continue
        if named or "requestBody" in operation:
            with_examples.add(operation_id)
    assert with_examples == set(EXAMPLE_RUN) - {"cleanup_downloads"}

    headers = {"Authorization": f"Bearer {token('swagger-user', admin=True)}"}
    for operation_id in EXAMPLE_RUN:
        url, query, extra_headers, body = filled_in(spec, *by_id[operation_id])
        response = client.open(
            url,
            method=by_id[operation_id][1].upper(),
            query_string=query,
            json=body,
            headers={**headers, **extra_headers},
        )
        assert 200 <= response.status_code < 300, (operation_id, url, query, body, response.json)
    start = spec["components"]["schemas"]["StartDownload"]["properties"]
    assert (start["content_id"]["example"], start["quality"]["example"]) == (DEMO_CONTENT_ID, DEMO_QUALITY)


def test_a_generated_client_drives_every_operation(generated, live_server, app, movie, token, request, configure):
    package, spec, _ = generated
    operations = generated_operations(package)
    models = importlib.import_module(f"{package.__name__}.models")
    client_module = importlib.import_module(f"{package.__name__}.client")
    timeout = httpx.Timeout(10)
    anonymous = client_module.Client(base_url=live_server, raise_on_unexpected_status=True, timeout=timeout)
    alice = client_module.AuthenticatedClient(
        base_url=live_server, token=token("alice"), raise_on_unexpected_status=True, timeout=timeout
    )
    admin = client_module.AuthenticatedClient(
        base_url=live_server, token=token("root", admin=True), raise_on_unexpected_status=True, timeout=timeout
    )
    called = set()

    def call(name, client, expected, parsed_as, /, **kwargs):
        called.add(name)
        response = operations[name].sync_detailed(client=client, **kwargs)
        assert response.status_code == expected, (name, response.status_code, response.content)
        assert isinstance(response.parsed, parsed_as), (name, response.parsed)
        return response.parsed

    def refused(name, client, expected, /, **kwargs):
        error = call(name, client, expected, models.Error, **kwargs)
        assert error.success is False and error.message
        return error

    # Probes and the catalogue
    assert call("check_liveness", anonymous, 200, models.Health).status == models.HealthStatus("alive")
    assert call("check_readiness", anonymous, 200, models.Health).checks.additional_properties == {
        "database": "ok",
        "redis": "ok",
    }
    contents = call("list_contents", alice, 200, models.ContentList).contents
    assert [content.id for content in contents] == ["movie"]
    movie_title = call("get_content", alice, 200, models.ContentEnvelope, content_id="movie").content
    assert movie_title.qualities == ["480p", "720p", "1080p"]
    size_720p = movie_title.sizes.additional_properties["720p"]
    assert size_720p == "416625000"

    # The catalogue changed by an admin
    new_title = models.ContentCreate(
        id="short", title="Short", duration_seconds=60, qualities=[models.ContentCreateQualitiesItem("720p")]
    )
    created = call("create_content", admin, 201, models.ContentEnvelope, body=new_title)
    assert created.content.sizes.additional_properties == {"720p": "24997500"}
    assert refused("create_content", admin, 409, body=new_title).message
    updated = call(
        "update_content",
        admin,
        200,
        models.ContentEnvelope,
        content_id="short",
        body=models.ContentUpdate(title="A short film"),
    )
    assert updated.content.title == "A short film"
    source = call(
        "set_source",
        admin,
        200,
        models.SourceEnvelope,
        content_id="short",
        quality="720p",
        body=models.SetSource(location="https://media.example.com/short/720p.mp4", size_bytes="1000"),
    ).source
    assert (source.quality, source.size_bytes, source.sha256, source.content_type) == ("720p", "1000", None, None)
    call("delete_source", admin, 200, models.Message, content_id="short", quality="720p")
    refused("delete_source", admin, 404, content_id="short", quality="720p")
    call("delete_content", admin, 200, models.Message, content_id="short")
    refused("get_content", alice, 404, content_id="short")
    refused("create_content", alice, 403, body=new_title)

    # A download: start (again with the same key), list by status, read, progress
    start = models.StartDownload(content_id="movie", quality=models.StartDownloadQuality("720p"))
    started = call("start_download", alice, 202, models.DownloadEnvelope, body=start, idempotency_key="first")
    download = started.download
    assert download.status == models.DownloadStatus("pending") and len(download.id) == 32
    assert (download.file_size_bytes, download.downloaded_bytes) == (size_720p, "0")
    assert download.started_at is None and download.error is None
    again = call("start_download", alice, 200, models.DownloadEnvelope, body=start, idempotency_key="first")
    assert again.download.id == download.id
    listed = call("list_downloads", alice, 200, models.DownloadList, status=models.ListDownloadsStatus("pending"))
    assert [d.id for d in listed.downloads] == [download.id] and listed.pagination.total == 1
    none_paused = call("list_downloads", alice, 200, models.DownloadList, status=models.ListDownloadsStatus("paused"))
    assert none_paused.downloads == [] and none_paused.pagination.pages == 0
    assert call("get_download", alice, 200, models.DownloadEnvelope, download_id=download.id).download.id == download.id
    progress = call("get_progress", alice, 200, models.Progress, download_id=download.id)
    assert (progress.status, progress.progress, progress.file_size_bytes) == (
        models.ProgressStatus("pending"),
        0,
        size_720p,
    )
    etag = operations["get_progress"].sync_detailed(client=alice, download_id=download.id).headers["ETag"]
    unchanged = call("get_progress", alice, 304, type(None), download_id=download.id, if_none_match=etag)
    assert unchanged is None
    refused("get_download", alice, 404, download_id=UNKNOWN_ID)
    refused("get_progress", alice, 404, download_id=UNKNOWN_ID)

    # Control: pause, resume, cancel; a refused transition; a retry that no longer fits
    def act(action, status):
        envelope = call(f"{action}_download", alice, 200, models.DownloadEnvelope, download_id=download.id)
        assert envelope.download.status == models.DownloadStatus(status) and envelope.message
        return envelope.download

    act("pause", "paused")
    act("resume", "pending")
    act("cancel", "cancelled")
    assert refused("pause_download", alice, 409, download_id=download.id).status == "cancelled"
    storage = call("get_storage", alice, 200, models.Storage)
    assert (storage.used_bytes, storage.quota_bytes) == ("0", "10000000000")
    configure(STORAGE_QUOTA_BYTES=1000)
    short = refused("retry_download", alice, 413, download_id=download.id)
    assert (short.needed_bytes, short.free_bytes) == (size_720p, "1000")
    configure(STORAGE_QUOTA_BYTES=10_000_000_000)
    act("retry", "pending")
    assert call("get_storage", alice, 200, models.Storage).used_bytes == size_720p

    # Admin: the queue, and a requeue of the pending download
    health = call("get_queue_health", admin, 200, models.QueueHealth)
    assert health.downloads_by_status.additional_properties["pending"] == 1 and health.queue.ready >= 1
    requeued = call("requeue_download", admin, 200, models.DownloadEnvelope, download_id=download.id)
    assert requeued.download.status == models.DownloadStatus("pending")
    refused("get_queue_health", alice, 403)
    minutes = call("get_queue_activity", admin, 200, models.Activity).minutes
    assert len(minutes) == 60 and sum(m.started for m in minutes) >= 1

    # Streams, and the cookie for them; streams end at once here
    app.config["SSE_MAX_STREAM_SECONDS"] = 0.2
    assert call("open_stream_session", alice, 200, models.Message).message == "Stream cookie set"
    events = call("stream_events", alice, 200, str)
    assert "event: status" in events and download.id in events
    assert download.id in call("stream_download_events", alice, 200, str, download_id=download.id)
    refused("stream_download_events", alice, 404, download_id=UNKNOWN_ID)
    assert call("close_stream_session", anonymous, 200, models.Message).message == "Stream cookie removed"
    assert refused("get_download_file", alice, 409, download_id=download.id).status == "pending"

    # A worker completes it; a simulated download has no file to serve
    request.getfixturevalue("worker")

    def completed():
        return call("get_progress", alice, 200, models.Progress, download_id=download.id).status == (
            models.ProgressStatus("completed")
        )

    wait_until(completed, timeout=20, message="the download to complete")
    done = call("list_downloads", alice, 200, models.DownloadList, status=models.ListDownloadsStatus("completed"))
    assert [d.id for d in done.downloads] == [download.id]
    assert done.downloads[0].completed_at is not None and done.downloads[0].downloaded_bytes == size_720p
    assert refused("get_download_file", alice, 409, download_id=download.id).status == "completed"

    # Its licence: played, renewed
    played = call("play_download", alice, 200, models.DownloadEnvelope, download_id=download.id).download
    assert played.played_at is not None and played.license_expires_at is not None
    renewed = call("renew_download", alice, 200, models.DownloadEnvelope, download_id=download.id).download
    assert renewed.played_at is None and renewed.license_expires_at > played.license_expires_at
    refused("play_download", alice, 404, download_id=UNKNOWN_ID)
    watched = call("mark_watched", alice, 200, models.Watched, download_id=download.id)
    assert watched.download.watched_at is not None and watched.next_download is None

    # The account's settings
    assert call("get_account", alice, 200, models.Account).smart_downloads is False
    account = call("update_account", alice, 200, models.Account, body=models.AccountUpdate(smart_downloads=True))
    assert account.smart_downloads is True

    # Delete (both paths), then clean up the rest
    call("delete_download", alice, 200, models.Message, download_id=download.id)
    refused("get_download", alice, 404, download_id=download.id)
    other = call(
        "start_download",
        alice,
        202,
        models.DownloadEnvelope,
        body=models.StartDownload(content_id="movie", quality=models.StartDownloadQuality("480p")),
    ).download
    call("delete_download_legacy_path", alice, 200, models.Message, download_id=other.id)
    refused("delete_download_legacy_path", alice, 404, download_id=other.id)
    for quality in ("480p", "1080p"):
        call(
            "start_download",
            alice,
            202,
            models.DownloadEnvelope,
            body=models.StartDownload(content_id="movie", quality=models.StartDownloadQuality(quality)),
        )
    cleaned = call("cleanup_downloads", alice, 200, models.Cleanup)
    assert cleaned.deleted_count == 2 and int(cleaned.freed_bytes) > 0
    assert call("get_storage", alice, 200, models.Storage).used_bytes == "0"

    # Devices: registered, downloaded to, listed, deregistered with their downloads
    phone = call(
        "register_device", alice, 201, models.DeviceEnvelope, body=models.DeviceCreate(name="Phone", platform="ios")
    ).device
    assert refused("start_download", alice, 422, body=start).reason == "device_required"
    on_phone = models.StartDownload(content_id="movie", quality=models.StartDownloadQuality("480p"), device_id=phone.id)
    assert call("start_download", alice, 202, models.DownloadEnvelope, body=on_phone).download.device_id == phone.id
    listed = call("list_devices", alice, 200, models.DeviceList)
    assert [(d.id, d.download_count) for d in listed.devices] == [(phone.id, 1)]
    gone = call("deregister_device", alice, 200, models.Cleanup, device_id=phone.id)
    assert gone.deleted_count == 1
    refused("deregister_device", alice, 404, device_id=phone.id)

    assert called == operation_ids(spec)
