"""The end-to-end stack: the Jaeger v2 binary as Jaeger and as the Collector, the app under gunicorn."""
