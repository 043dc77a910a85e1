"""Security headers on every response (flask-talisman) and CORS for the API, off unless configured."""

from flask_cors import CORS
from flask_talisman import Talisman

# Everything the dashboard, the admin page and Swagger UI load comes from this origin; Swagger
# UI's one inline script carries the request's nonce (see templates/swagger_ui.html).
CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}
# Headers a browser client on another origin may send and read (CORS).
CORS_REQUEST_HEADERS = ["Authorization", "Content-Type", "Idempotency-Key", "If-None-Match", "Last-Event-ID"]
CORS_EXPOSED_HEADERS = ["ETag", "Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"]


def init_app(app):
    Talisman(
        app,
        # TLS ends at the proxy in front of gunicorn; HSTS is still sent on HTTPS requests.
        force_https=False,
        frame_options="DENY",
        content_security_policy=CONTENT_SECURITY_POLICY,
        content_security_policy_nonce_in=["script-src"],
        referrer_policy="no-referrer",
        session_cookie_secure=False,  # the app keeps no Flask session
    )
    if app.config["CORS_ORIGINS"]:
        CORS(
            app,
            resources={r"/api/*": {"origins": app.config["CORS_ORIGINS"]}},
            allow_headers=CORS_REQUEST_HEADERS,
            expose_headers=CORS_EXPOSED_HEADERS,
            max_age=600,
        )
