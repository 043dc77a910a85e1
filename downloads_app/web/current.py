"""The runtime of the app serving the current request or command (settings and adapters)."""

from flask import current_app


def current_runtime():
    return current_app.extensions["runtime"]
