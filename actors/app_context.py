"""Dramatiq middleware that runs each message inside the Flask app's context."""
import threading

from dramatiq import Middleware


class AppContext(Middleware):
    """Push an app context before each message and pop it after, in the worker thread."""

    def __init__(self, app):
        self.app = app
        self._local = threading.local()

    def before_process_message(self, broker, message):
        self._local.context = self.app.app_context()
        self._local.context.push()

    def after_process_message(self, broker, message, *, result=None, exception=None):
        context = getattr(self._local, "context", None)
        if context is not None:
            self._local.context = None
            context.pop()

    after_skip_message = after_process_message
