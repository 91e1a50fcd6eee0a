"""An example Flask app in the shape of a team's blueprint project, observed by flask-sigobs.

Run it with observability on::

    flask --app examples.app run            # or: gunicorn -w 2 'examples.app:create_app()'

Logins: alice / wonderland, bob / builder.
"""

from __future__ import annotations

from blinker import Namespace
from flask import Blueprint, Flask, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user, logout_user

from flask_sigobs import SigObs, audit, auth

sigobs = SigObs()
login_manager = LoginManager()

# A custom signal of the app's own, observed with sigobs.observe() below.
shop_signals = Namespace()
item_viewed = shop_signals.signal("shop.item_viewed")

USERS = {"alice": "wonderland", "bob": "builder"}
ITEMS = {1: "teapot", 2: "lantern", 3: "compass"}


class User(UserMixin):
    def __init__(self, name: str) -> None:
        self.id = name


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return User(user_id) if user_id in USERS else None


# -- auth blueprint -------------------------------------------------------------------------
auth_bp = Blueprint("auth", __name__)


@auth_bp.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        return render_template("login.html")
    name = request.form.get("username", "")
    password = request.form.get("password", "")
    # Too many failures for this user or address (across workers): refuse before trying the password.
    lock = audit.check(user=name)
    if lock:
        flash("Too many failed attempts; try again later.", "error")
        return render_template("login.html"), 429, {"Retry-After": str(lock.retry_after)}
    if name not in USERS:
        auth.login_failed.send(current_app._get_current_object(), user=name, reason="unknown_user")
        flash("Wrong username or password.", "error")
        return render_template("login.html"), 401
    if USERS[name] != password:
        auth.login_failed.send(current_app._get_current_object(), user=name, reason="bad password")
        flash("Wrong username or password.", "error")
        return render_template("login.html"), 401
    login_user(User(name))
    auth.login_succeeded.send(current_app._get_current_object(), user=name, method="password")
    flash(f"Welcome, {name}.", "success")
    return redirect(url_for("main.index"))


@auth_bp.route("/logout", methods=["POST"])
@login_required
def logout():
    name = current_user.get_id()
    logout_user()
    auth.logged_out.send(current_app._get_current_object(), user=name)
    return redirect(url_for("main.index"))


# -- main blueprint -------------------------------------------------------------------------
main_bp = Blueprint("main", __name__)


@main_bp.route("/")
def index():
    return render_template("index.html", items=ITEMS)


@main_bp.route("/admin")
@login_required
def admin():
    if current_user.get_id() != "bob":
        auth.access_denied.send(current_app._get_current_object(), user=current_user, permission="admin")
        abort(403)
    return render_template("index.html", items=ITEMS)


# -- JSON API blueprint ---------------------------------------------------------------------
api_bp = Blueprint("api", __name__, url_prefix="/api")


@api_bp.route("/items/<int:item_id>")
def item(item_id: int):
    if item_id not in ITEMS:
        abort(404)
    item_viewed.send(current_app._get_current_object(), item_id=item_id, name=ITEMS[item_id])
    return jsonify(id=item_id, name=ITEMS[item_id])


@api_bp.route("/reports/<int:year>")
def report(year: int):
    raise RuntimeError(f"report generator crashed for {year}")


def create_app(config: dict | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(SECRET_KEY="dev-only-not-secret", SIGOBS_SERVICE_NAME="sigobs-example")
    app.config.update(config or {})
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    app.register_blueprint(auth_bp)
    app.register_blueprint(main_bp)
    app.register_blueprint(api_bp)
    sigobs.init_app(app)
    sigobs.observe(item_viewed)
    return app


app = create_app()
