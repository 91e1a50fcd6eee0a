"""The login app of the audit tests under gunicorn (``tests.audit_served:app``), set up by the
environment (SIGOBS_AUDIT_URL, SIGOBS_AUDIT_JOURNAL, ...) as a deployment is."""

from .audit_support import login_app

app, sigobs = login_app("audit_served")
