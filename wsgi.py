"""WSGI entry point for gunicorn and the Flask CLI."""

from downloads_app import create_app

app = create_app()
