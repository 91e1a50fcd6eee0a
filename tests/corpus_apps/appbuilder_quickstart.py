"""Flask-AppBuilder's minimal application, as its skeleton and "Base Configuration" docs set it up.

FAB's ``flask fab create-app`` downloads the skeleton from the internet, so the corpus writes its
``app/__init__.py`` and ``config.py`` here, in one module: an AppBuilder over Flask-SQLAlchemy,
database authentication (``AUTH_DB``) by FAB's own security manager, CSRF on its forms. The user
is made by FAB's own command, ``flask fab create-admin``. The database is the SQLite file named by
``CORPUS_DATABASE_URI``.
"""

import os

from flask import Flask
from flask_appbuilder import AppBuilder
from flask_appbuilder.const import AUTH_DB
from flask_appbuilder.utils.legacy import get_sqla_class


class Config:  # the skeleton's config.py
    SECRET_KEY = "thisismyscretkey"  # the skeleton's, less its escape sequences
    SQLALCHEMY_DATABASE_URI = os.environ["CORPUS_DATABASE_URI"]
    CSRF_ENABLED = True
    AUTH_TYPE = AUTH_DB
    APP_NAME = "F.A.B. corpus"


app = Flask(__name__)
app.config.from_object(Config)
db = get_sqla_class()(app)
with app.app_context():  # FAB 5 initialises inside the app context
    appbuilder = AppBuilder(app, db.session)
