"""The state machine's table: legal transitions and their effect on the quota ledger."""

import pytest

from downloads_app.downloads import lifecycle


def test_every_transition_leads_to_a_known_state_from_known_states():
    for name, (sources, target) in lifecycle.TRANSITIONS.items():
        assert sources <= set(lifecycle.STATUSES), name
        assert target in lifecycle.STATUSES, name


@pytest.mark.parametrize(
    "transition, delta",
    [
        ("claim", 0),
        ("complete", 0),
        ("requeue", 0),
        ("pause", 0),
        ("resume", 0),
        ("fail", -100),
        ("cancel", -100),
        ("retry", 100),
    ],
)
def test_quota_change(transition, delta):
    assert lifecycle.quota_change(transition, 100) == delta


def test_completed_is_final_for_every_user_action():
    for name in ("pause", "resume", "cancel", "retry"):
        assert lifecycle.COMPLETED not in lifecycle.sources(name)
