"""Schemathesis fuzzes every operation of the app's own /openapi.json, on SQLite and PostgreSQL.

Each operation gets FUZZ_EXAMPLES generated requests (valid and invalid) with an admin token,
and every schemathesis check runs on every answer: no 5xx, only documented statuses, bodies
and headers that match the spec, invalid input refused, missing auth refused, 405 with Allow.
Hypothesis is derandomized, so a run is repeatable: the same examples every time.
"""

import os

import schemathesis
from hypothesis import HealthCheck, settings

from downloads_app import create_app
from support.environment import REDIS_URL, TEST_JWT_SECRET

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))


def _spec():
    """The spec as the app serves it (it depends on no database or Redis state)."""
    app = create_app(
        {"TESTING": True, "DATABASE_URL": "sqlite:///:memory:", "REDIS_URL": REDIS_URL, "JWT_SECRET": TEST_JWT_SECRET}
    )
    return app.test_client().get("/openapi.json").json


schema = schemathesis.openapi.from_dict(_spec())


@schema.hook
def filter_query(context, query):
    """Skip queries with an empty list or object: sent as nothing, they are valid requests."""
    del context
    return not any(value in ([], {}) for value in (query or {}).values())


@schema.parametrize()
@settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_every_operation_holds_to_its_spec(case, app, movie, token):
    # Limits high enough that fuzzing explores the operations, not the 429 answer; streams
    # end at once so that reading one completes.
    app.config.update(
        RATELIMIT_START="10000/minute",
        RATELIMIT_WRITES="10000/minute",
        SSE_MAX_STREAM_SECONDS=0.05,
        DOWNLOAD_CONNECT_TIMEOUT_SECONDS=0.5,
        DOWNLOAD_READ_TIMEOUT_SECONDS=0.5,
    )
    case.operation.schema.app = app  # checks that send more requests send them here too
    case.call_and_validate(app=app, headers={"Authorization": f"Bearer {token('fuzzer', admin=True)}"})


def test_a_conditional_progress_answer_holds_to_the_spec(app, movie, token):
    """Random If-None-Match values rarely match: the 304 (and the 200 it revalidates) checked by name."""
    headers = {"Authorization": f"Bearer {token('fuzzer')}"}
    started = app.test_client().post(
        "/api/downloads/start", json={"content_id": "movie", "quality": "720p"}, headers=headers
    )
    operation = schema["/api/downloads/{download_id}/progress"]["GET"]
    operation.schema.app = app
    path_parameters = {"download_id": started.json["download"]["id"]}
    first = operation.Case(path_parameters=path_parameters).call_and_validate(app=app, headers=headers)
    assert first.status_code == 200
    for if_none_match in (first.headers["etag"][0], "*"):
        case = operation.Case(path_parameters=path_parameters, headers={"If-None-Match": if_none_match})
        assert case.call_and_validate(app=app, headers=headers).status_code == 304
