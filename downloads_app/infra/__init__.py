"""Adapters to the outside: database, migrations, broker, event hub, files on disk, origins, logs, metrics.

May import only the standard library, third-party packages and `downloads_app.config`:
nothing from the domain, the transfer or the web wing.
"""
