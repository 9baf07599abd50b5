import os
import sys

from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

from .boot import settings_problem

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fmr.settings")

if problem := settings_problem():
    if "gunicorn" in sys.modules:
        # One line, then gunicorn's "App failed to load" status, which stops the master (with
        # --preload too) instead of respawning the worker: no traceback per worker.
        from gunicorn.arbiter import Arbiter

        print(f"gunicorn: configuration error: {problem}", file=sys.stderr, flush=True)
        raise SystemExit(Arbiter.APP_LOAD_ERROR)
    raise ImproperlyConfigured(problem)
application = get_wsgi_application()
