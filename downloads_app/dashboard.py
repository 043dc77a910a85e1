"""The web dashboard at `/`: static page, script and styles served from the package."""
from flask import Blueprint

blp = Blueprint("dashboard", __name__, static_folder="static/dashboard", static_url_path="/dashboard")


@blp.route("/")
def index():
    return blp.send_static_file("index.html")
