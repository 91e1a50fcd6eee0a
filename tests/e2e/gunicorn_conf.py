"""gunicorn settings for the end-to-end test: say when each worker has loaded the app.

``post_worker_init`` runs in a worker once the app is imported (or, with ``--preload``, once the
worker is forked from a master that imported it): the test waits for one such line per worker.
"""


def post_worker_init(worker):
    worker.log.info("sigobs-e2e: worker %s ready", worker.pid)
