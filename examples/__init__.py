"""wsgisession's examples: run from a checkout (its root on ``sys.path``, as ``wsgisession serve`` and gunicorn put the current directory), never installed."""
