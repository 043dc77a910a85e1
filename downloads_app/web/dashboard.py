"""The web dashboard at `/` and its admin page at `/admin`: static files served from the package."""

from flask import Blueprint

blp = Blueprint("dashboard", __name__, static_folder="static/dashboard", static_url_path="/dashboard")


@blp.route("/")
def index():
    return blp.send_static_file("index.html")


@blp.route("/admin")
def admin():
    return blp.send_static_file("admin.html")
