"""The one table of HTTP statuses: every refusal has a status, and answers carry its reason."""

import pytest

from downloads_app.downloads import refusals
from downloads_app.infra.broker import QueueUnavailable
from downloads_app.infra.stored_files import InsufficientStorage
from downloads_app.web import http_errors


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def test_every_refusal_has_a_status_and_a_reason_of_its_own():
    refused = {*_subclasses(refusals.Refusal), QueueUnavailable, InsufficientStorage}
    assert refused <= set(http_errors.STATUSES), refused - set(http_errors.STATUSES)
    reasons = [cls.reason for cls in http_errors.STATUSES]
    assert len(set(reasons)) == len(reasons)
    assert all(reason.isidentifier() and reason.islower() for reason in reasons)


@pytest.mark.parametrize(("refusal", "status"), list(http_errors.STATUSES.items()))
def test_a_refusal_answers_its_status_with_its_message_and_details(app, refusal, status):
    domain = issubclass(refusal, refusals.Refusal)
    error = refusal("No.", status="paused") if domain else refusal("No.")
    with app.test_request_context():
        body, answered, headers = http_errors.handle_refusal(error)
    assert answered == status
    assert body["success"] is False and body["message"] == "No." and body["reason"] == refusal.reason
    assert body.get("status") == ("paused" if domain else None)
    assert ("WWW-Authenticate" in headers) == (status == 401)
    assert ("Retry-After" in headers) == (status == 503)
