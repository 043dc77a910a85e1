"""Under gevent: one greenlet writes to a SQLite file through the service's handle while another ticks.

`python gevent_sqlite_writer.py PATH` prints `writing`, then `tick` every 10 ms while the
write waits for the file's write lock, then `written`: the test that runs it holds the lock
and lets it go only once it has seen the ticks.
"""

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402

from downloads_app.infra.database import open_database  # noqa: E402


def main(path):
    db = open_database(f"sqlite:///{path}")

    def tick():
        while True:
            print("tick", flush=True)
            time.sleep(0.01)

    def write():
        with db.connection_context():
            print("writing", flush=True)
            with db.atomic():
                db.execute_sql("INSERT INTO writes (n) VALUES (1)")
        print("written", flush=True)

    ticker = gevent.spawn(tick)
    gevent.spawn(write).get()
    ticker.kill()


if __name__ == "__main__":
    main(sys.argv[1])
