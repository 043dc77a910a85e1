"""One worker run of a download: claim it, move the bytes (simulated or from an origin), record it.

The run (`run.py`) talks to the domain; the copier (`copier.py`) and the bandwidth limits
know only the run's handle and `downloads_app.infra` (origins, stored files).
"""
