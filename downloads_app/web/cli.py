"""Flask CLI commands: `db upgrade`, `demo seed`, `auth token`, `downloads reconcile`, `queue stats|requeue`."""

import json

import click
from flask.cli import AppGroup

from downloads_app.downloads import catalogue, queue_health, recovery
from downloads_app.downloads.models import Content
from downloads_app.downloads.refusals import Refusal
from downloads_app.infra import schema_migrations
from downloads_app.web.auth import issue_token
from downloads_app.web.current import current_runtime
from downloads_app.web.schemas import QueueHealthSchema

db_cli = AppGroup("db", help="Database schema.")
demo_cli = AppGroup("demo", help="Demo data.")
auth_cli = AppGroup("auth", help="Tokens.")
downloads_cli = AppGroup("downloads", help="Download maintenance.")
queue_cli = AppGroup("queue", help="The job queue and its workers.")

DEMO_USER = "demo-user"

# id, title, duration in seconds
DEMO_TITLES = (
    ("big-buck-bunny", "Big Buck Bunny", 596),
    ("sintel", "Sintel", 888),
    ("tears-of-steel", "Tears of Steel", 734),
    ("cosmos-laundromat", "Cosmos Laundromat", 730),
    ("spring", "Spring", 464),
    ("the-long-voyage", "The Long Voyage (feature film)", 7_200),
)


@db_cli.command("upgrade")
def db_upgrade():
    """Apply every schema migration not yet applied."""
    applied = schema_migrations.upgrade(current_runtime().settings.migrations_dir)
    click.echo(f"Applied {len(applied)} migrations" + (f": {', '.join(applied)}" if applied else ""), err=True)


@db_cli.command("downgrade")
def db_downgrade():
    """Roll the latest schema migration back (stop the API and the workers first)."""
    rolled_back = schema_migrations.downgrade(current_runtime().settings.migrations_dir)
    click.echo(f"Rolled back {rolled_back}", err=True)


@demo_cli.command("seed")
def demo_seed():
    """Load the demo titles (idempotent) and print a token for the demo user."""
    settings = current_runtime().settings
    qualities = catalogue.offered_qualities(settings)
    added = 0
    for content_id, title, duration in DEMO_TITLES:
        if Content.get_or_none(Content.id == content_id) is None:
            catalogue.create_content(settings, content_id, title, duration, qualities)
            added += 1
    click.echo(
        f"Catalogue: {added} titles added, {len(DEMO_TITLES) - added} already there. "
        f"A token for {DEMO_USER!r} follows on standard output.",
        err=True,
    )
    click.echo(issue_token(DEMO_USER))


@auth_cli.command("token")
@click.argument("user_id")
@click.option("--admin", is_flag=True, help="Grant the admin role.")
@click.option("--ttl", type=int, default=None, help="Seconds until expiry (default JWT_TTL_SECONDS).")
def auth_token(user_id, admin, ttl):
    """Print a signed token for USER_ID, alone, on standard output."""
    click.echo(issue_token(user_id, admin=admin, ttl_seconds=ttl))


@downloads_cli.command("reconcile")
def downloads_reconcile():
    """Run one pass of the reconciler the workers run on their own.

    Stalled downloads (no report for DOWNLOAD_STALL_SECONDS) go back to pending and are
    queued again, or become failed once DOWNLOAD_MAX_ATTEMPTS are spent; pending downloads
    whose message was lost are queued again.
    """
    result = recovery.sweep(current_runtime())
    for kind, ids in result.items():
        click.echo(f"{kind}: {len(ids)}" + (f" ({', '.join(ids)})" if ids else ""))


@queue_cli.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print the same JSON as GET /api/queue/health.")
def queue_stats(as_json):
    """Show queue depths, dead letters, live workers, downloads by state and stalled downloads."""
    health = queue_health.snapshot(current_runtime())
    if as_json:
        click.echo(json.dumps(QueueHealthSchema().dump({"success": True, **health}), indent=2))
        return
    q = health["queue"]
    click.echo(f"queue {q['name']}: {q['ready']} ready, {q['delayed']} delayed, {q['dead_lettered']} dead-lettered")
    click.echo(f"workers alive: {health['workers_alive']}")
    for worker in health["workers"]:
        state = "alive" if worker["alive"] else "silent"
        click.echo(f"  {worker['host']} pid {worker['pid']} ({worker['threads']} threads): {state}")
    click.echo("downloads: " + ", ".join(f"{s} {n}" for s, n in health["downloads_by_status"].items()))
    age = health["oldest_pending_age_seconds"]
    click.echo(f"oldest pending: {age:.1f}s" if age is not None else "oldest pending: none")
    click.echo(f"stalled: {health['stalled_count']}" + "".join(f"\n  {d.id}" for d in health["stalled"]))
    if health["dead_lettered_downloads"]:
        click.echo("dead-lettered: " + ", ".join(health["dead_lettered_downloads"]))
    click.echo(f"licences expiring within a day: {health['licences_expiring_next_day']}")


@queue_cli.command("requeue")
@click.argument("download_id")
def queue_requeue(download_id):
    """Queue DOWNLOAD_ID again: stalled, pending, dead-lettered or failed (failed starts over)."""
    try:
        download = recovery.requeue(current_runtime(), download_id)
    except Refusal as refusal:
        raise click.ClickException(refusal.message) from refusal
    click.echo(f"{download.id}: {download.status}, queued again")


def init_app(app):
    for group in (db_cli, demo_cli, auth_cli, downloads_cli, queue_cli):
        app.cli.add_command(group)
