"""Each account's yearly allowances of a title: how often it was downloaded and its licence renewed."""

from datetime import date

from downloads_app.downloads.models import TitleAllowance, utcnow
from downloads_app.downloads.refusals import RenewalsSpent, YearlyDownloadsSpent

DOWNLOADS = "downloads"
RENEWALS = "renewals"
# kind: (its refusal when spent, the cap's name in the refusal, what the title was)
_SPENT = {
    DOWNLOADS: (YearlyDownloadsSpent, "max_downloads_per_year", "downloaded"),
    RENEWALS: (RenewalsSpent, "max_renewals", "renewed"),
}


def frees_up_on(year):
    """The day a spent allowance of `year` is new again: the next calendar year (UTC) starts."""
    return date(year + 1, 1, 1)


def take(user_id, content, kind, cap):
    """Count one more of `kind` (DOWNLOADS or RENEWALS) of `content` this year if fewer than `cap`
    were, else YearlyDownloadsSpent or RenewalsSpent with the day it frees up.

    One statement that locks the row until commit: the caller's transaction takes it back if it
    rolls back, and racing takes cannot both get the last one.
    """
    year = utcnow().year
    column = getattr(TitleAllowance, kind)
    taken = cap > 0 and list(
        TitleAllowance.insert(user_id=user_id, content=content.id, year=year, **{kind: 1})
        .on_conflict(
            conflict_target=[TitleAllowance.user_id, TitleAllowance.content, TitleAllowance.year],
            update={column: column + 1},
            where=column < cap,
        )
        .returning(column)
        .tuples()
        .execute()
    )
    if not taken:
        refusal, cap_name, done = _SPENT[kind]
        frees = frees_up_on(year)
        raise refusal(
            f"{content.title!r} may be {done} {cap} times a year and you have used them all; "
            f"it can be {done} again from {frees:%Y-%m-%d}.",
            **{cap_name: cap, "frees_up_on": frees.isoformat()},
        )
