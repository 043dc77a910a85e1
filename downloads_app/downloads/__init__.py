"""The domain: the download lifecycle, its transitions, the ledger, admission and the catalogue.

May import `downloads_app.infra` (database, broker, event hub, stored files) and
`downloads_app.config`; never Flask's request objects, HTTP statuses or the web wing.
"""
