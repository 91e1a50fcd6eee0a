"""``sigobs tail``: flask-sigobs JSON log lines, read by a person.

One module per job, in the order a line goes through them::

    reader   (files followed across rotation, or a pipe)  -> batches of raw lines
    filters  (a byte-level prefilter, then tests on the parsed line)
    sinks    -> render (one line per event, by kind; stack: compact tracebacks;
                        clock: cached time conversion; terminal: colours and escaping)
             -> stats  (--stats: per-route percentiles, logins, exceptions)
    requestsink -> group (--by-request: blocks released when a request ends) -> render
    parallel (a big file on every core: the sinks' work in worker processes)
    output   (batched writes; quiet on a broken pipe)

``options`` defines the command line and ``command`` runs it. Nothing here imports Flask,
OpenTelemetry or structlog: tailing a file must start in a few tens of milliseconds.
"""
