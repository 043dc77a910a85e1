"""The Flask side: API blueprints, event streams, schemas, auth, rate limits, error answers, pages.

May import every other wing; nothing outside it imports it, but the app factory and the CLI.
"""
