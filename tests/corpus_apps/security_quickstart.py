"""Flask-Security-Too's quick start, "Basic Flask-SQLAlchemy Application" (docs: Quick Start).

As the docs write it, with three differences: the database is a SQLite file named by
``CORPUS_DATABASE_URI`` (the docs' ``sqlite://`` is one database per gunicorn worker, so a session
made by one worker names a user the other does not have), the test user's password is one the
corpus can look for in every output, and ``SECURITY_RECOVERABLE`` is on (the docs' Configuration
page), for the password-reset link ``/reset/<token>``: a token in a URL path (with no mail
extension installed, the notice mailed after a reset is off).
"""

import os

from flask import Flask, render_template_string
from flask_security import Security, SQLAlchemyUserDatastore, auth_required, current_user, hash_password
from flask_security.models import fsqla_v3 as fsqla
from flask_sqlalchemy import SQLAlchemy

# Create app
app = Flask(__name__)

# Generate a nice key using secrets.token_urlsafe()
app.config["SECRET_KEY"] = os.environ.get("SECRET_KEY", "pf9Wkove4IKEAXvy-cQkeDPhv9Cb3Ag-wyJILbq_dFw")
# Generate a good salt using: secrets.SystemRandom().getrandbits(128)
app.config["SECURITY_PASSWORD_SALT"] = os.environ.get("SECURITY_PASSWORD_SALT",
                                                      "146585145368132386173505678016728509634")

# have session and remember cookie be samesite (flask/flask_login)
app.config["REMEMBER_COOKIE_SAMESITE"] = "strict"
app.config["SESSION_COOKIE_SAMESITE"] = "strict"

app.config["SQLALCHEMY_DATABASE_URI"] = os.environ["CORPUS_DATABASE_URI"]
# This option makes sure that DB connections from the pool are still valid.
app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {"pool_pre_ping": True}
app.config["SQLALCHEMY_TRACK_MODIFICATIONS"] = False
app.config["SECURITY_RECOVERABLE"] = True
app.config["SECURITY_SEND_PASSWORD_RESET_NOTICE_EMAIL"] = False  # no mail extension in the quick start

# Create database connection object
db = SQLAlchemy(app)

# Define models
fsqla.FsModels.set_db_info(db)


class Role(db.Model, fsqla.FsRoleMixin):
    pass


class User(db.Model, fsqla.FsUserMixin):
    pass


# Setup Flask-Security
user_datastore = SQLAlchemyUserDatastore(db, User, Role)
app.security = Security(app, user_datastore)


# Views
@app.route("/")
@auth_required()
def home():
    return render_template_string("Hello {{email}} !", email=current_user.email)


# one time setup
with app.app_context():
    # Create User to test with
    db.create_all()
    if not app.security.datastore.find_user(email="test@me.com"):
        app.security.datastore.create_user(email="test@me.com", password=hash_password("Corpus-fs-pw-5h2Kq9"))
    db.session.commit()

if __name__ == "__main__":
    # run application (can also use flask run)
    app.run()
