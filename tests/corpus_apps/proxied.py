"""An app behind a reverse proxy, as Flask's and Werkzeug's docs set one up, and issue 21's prefix.

Flask's docs ("Tell Flask it is Behind a Proxy") wrap ``app.wsgi_app`` in Werkzeug's ``ProxyFix``;
the app then adds a prefix middleware of its own, kept on ``app.wsgi_app``, whose attributes its
views read back through ``current_app.wsgi_app`` (what issue 21 found 500 on every page once
attached). Nothing here knows of flask-sigobs.
"""

from flask import Flask, current_app, jsonify, request
from werkzeug.middleware.proxy_fix import ProxyFix


class PrefixMiddleware:
    """Mounts the app under ``script_name``, and says so: views link back to it."""

    def __init__(self, app, script_name="/"):
        self.app = app
        self.script_name = script_name

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if self.script_name != "/" and path.startswith(self.script_name):
            environ["SCRIPT_NAME"] = self.script_name
            environ["PATH_INFO"] = path[len(self.script_name):] or "/"
        return self.app(environ, start_response)


app = Flask(__name__)
app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1, x_prefix=1)
app.wsgi_app = PrefixMiddleware(app.wsgi_app, script_name="/shop")


@app.route("/")
def index():
    return jsonify(mounted_at=current_app.wsgi_app.script_name, client=request.remote_addr,
                   scheme=request.scheme, root=request.script_root)


@app.route("/items/<int:item_id>")
def item(item_id):
    if item_id > 100:
        return jsonify(error="no such item"), 404
    return jsonify(id=item_id, link=f"{current_app.wsgi_app.script_name}/items/{item_id}")


@app.route("/middleware")
def middleware():
    mw = current_app.wsgi_app
    return jsonify(type=type(mw).__name__, inner=type(mw.app).__name__, x_for=mw.app.x_for)
