"""Each account's yearly allowances of a title: how often it was downloaded and its licence renewed."""

from datetime import date

from downloads_app.downloads.models import TitleAllowance, utcnow

DOWNLOADS = "downloads"
RENEWALS = "renewals"


def frees_up_on(year):
    """The day a spent allowance of `year` is new again: the next calendar year (UTC) starts."""
    return date(year + 1, 1, 1)


def take(user_id, content_id, kind, cap):
    """Count one more of `kind` (DOWNLOADS or RENEWALS) of the title this year if fewer than `cap`
    were; the year it counted in, or None when the allowance is spent.

    One statement that locks the row until commit: the caller's transaction takes it back if it
    rolls back, and racing takes cannot both get the last one.
    """
    year = utcnow().year
    if cap <= 0:
        return None
    column = getattr(TitleAllowance, kind)
    taken = list(
        TitleAllowance.insert(user_id=user_id, content=content_id, year=year, **{kind: 1})
        .on_conflict(
            conflict_target=[TitleAllowance.user_id, TitleAllowance.content, TitleAllowance.year],
            update={column: column + 1},
            where=column < cap,
        )
        .returning(column)
        .tuples()
        .execute()
    )
    return year if taken else None
