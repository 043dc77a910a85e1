"""Readiness, the OpenAPI spec and the locally served Swagger UI."""

from downloads_app import create_app
from support.environment import REDIS_URL


def test_readyz_reports_database_and_redis(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"success": True, "status": "ready", "checks": {"database": "ok", "redis": "ok"}}


def test_readyz_is_503_when_migrations_are_missing(tmp_path):
    app = create_app(
        {"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}", "REDIS_URL": REDIS_URL}
    )
    response = app.test_client().get("/readyz")
    app.extensions["broker"].client.close()
    assert response.status_code == 503
    assert (
        response.json["checks"]["database"]
        == "migrations not applied: 001_initial, 002_last_error, 003_idempotency_key, 004_sources, "
        "005_offline_rules, 006_smart_downloads"
    )


def test_readyz_is_503_when_redis_is_away(database_url, unused_tcp_port):
    app = create_app(
        {"TESTING": True, "DATABASE_URL": database_url, "REDIS_URL": f"redis://127.0.0.1:{unused_tcp_port}/0"}
    )
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"] == {"database": "ok", "redis": "unavailable: ConnectionError"}


def test_every_route_is_in_the_spec_with_schemas_and_bearer_auth(client):
    spec = client.get("/openapi.json").json
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    assert spec["security"] == [{"bearerAuth": []}]
    expected = {
        ("/api/downloads/start", "post"),
        ("/api/downloads", "get"),
        ("/api/downloads/{download_id}", "get"),
        ("/api/downloads/{download_id}", "delete"),
        ("/api/downloads/{download_id}/delete", "delete"),
        ("/api/downloads/{download_id}/progress", "get"),
        ("/api/downloads/cleanup", "post"),
        ("/api/downloads/{download_id}/file", "get"),
        ("/api/contents/{content_id}/sources/{quality}", "put"),
        ("/api/contents/{content_id}/sources/{quality}", "delete"),
        ("/api/downloads/{download_id}/pause", "post"),
        ("/api/downloads/{download_id}/resume", "post"),
        ("/api/downloads/{download_id}/cancel", "post"),
        ("/api/downloads/{download_id}/retry", "post"),
        ("/api/downloads/{download_id}/play", "post"),
        ("/api/downloads/{download_id}/renew", "post"),
        ("/api/storage", "get"),
        ("/api/devices", "get"),
        ("/api/devices", "post"),
        ("/api/devices/{device_id}", "delete"),
        ("/api/me", "get"),
        ("/api/me", "patch"),
        ("/api/downloads/{download_id}/watched", "post"),
        ("/api/contents", "get"),
        ("/api/contents", "post"),
        ("/api/contents/{content_id}", "get"),
        ("/api/contents/{content_id}", "patch"),
        ("/api/contents/{content_id}", "delete"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/api/downloads/events", "get"),
        ("/api/downloads/{download_id}/events", "get"),
        ("/api/session", "post"),
        ("/api/session", "delete"),
        ("/api/queue/health", "get"),
        ("/api/queue/activity", "get"),
        ("/api/queue/downloads/{download_id}/requeue", "post"),
    }
    media_of = {
        ("/api/downloads/events", "get"): "text/event-stream",
        ("/api/downloads/{download_id}/events", "get"): "text/event-stream",
        ("/api/downloads/{download_id}/file", "get"): "application/octet-stream",
    }
    documented = {(path, method) for path, item in spec["paths"].items() for method in item if method != "parameters"}
    assert documented == expected
    for path, method in expected:
        operation = spec["paths"][path][method]
        assert operation["summary"], (path, method)
        success = [code for code in operation["responses"] if code.startswith("2")]
        media = media_of.get((path, method), "application/json")
        assert success and "schema" in operation["responses"][success[0]]["content"][media], (path, method)
    start = spec["paths"]["/api/downloads/start"]["post"]
    assert "requestBody" in start and "202" in start["responses"]
    byte_count = spec["components"]["schemas"]["Download"]["properties"]["file_size_bytes"]
    assert byte_count["type"] == "string"


def test_swagger_ui_is_served_without_a_cdn(client):
    page = client.get("/docs")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'src="/docs/assets/swagger-ui-bundle.js"' in html and "://" not in html
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js"):
        with client.get(f"/docs/assets/{asset}") as response:
            assert response.status_code == 200 and len(response.data) > 1000
