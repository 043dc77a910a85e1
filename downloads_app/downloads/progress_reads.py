"""The progress of one of a user's downloads, read with one hand-written SELECT: clients poll it."""

from collections import namedtuple

from downloads_app.downloads.models import Download
from downloads_app.downloads.refusals import DownloadNotFound
from downloads_app.infra.database import database
from downloads_app.infra.event_hub import PROGRESS_FIELDS

# What the progress body shows of a download: the columns of the same names.
ProgressRead = namedtuple("ProgressRead", PROGRESS_FIELDS)

# Written out rather than built by Peewee, which spent more time building the query than the
# database took to answer it. `{param}` is the driver's placeholder (sqlite3 `?`, psycopg2 `%s`).
SELECT_PROGRESS = (
    f"SELECT {', '.join(PROGRESS_FIELDS)} FROM {Download._meta.table_name} WHERE id = {{param}} AND user_id = {{param}}"
)


def progress_of(user_id, download_id):
    """The progress fields of the user's download, or DownloadNotFound (also for another user's id)."""
    sql = SELECT_PROGRESS.format(param=database.param)
    row = database.execute_sql(sql, (download_id, user_id)).fetchone()
    if row is None:
        raise DownloadNotFound("No download with that id.")
    return ProgressRead._make(row)
