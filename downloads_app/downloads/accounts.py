"""Each user's own account settings: smart downloads."""

from downloads_app.downloads.models import AccountSettings


def settings_of(user_id):
    """{smart_downloads} of the user (the defaults until they change one)."""
    row = AccountSettings.get_or_none(AccountSettings.user_id == user_id)
    return {"smart_downloads": row.smart_downloads if row else False}


def change(user_id, **changes):
    """Change the user's settings (`smart_downloads`); their settings after."""
    if changes:
        AccountSettings.insert(user_id=user_id, **changes).on_conflict(
            conflict_target=[AccountSettings.user_id], update=changes
        ).execute()
    return settings_of(user_id)
