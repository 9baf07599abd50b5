import os
import sys

from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

from .boot import settings_problem

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fmr.settings")

problem = settings_problem()
if problem and "gunicorn" in sys.modules:
    # One line, then gunicorn's "application failed to load" status: a booting worker that exits
    # with it stops the master ("App failed to load") instead of being respawned, and with
    # --preload the master itself exits with it. Either way no traceback per worker.
    from gunicorn.arbiter import Arbiter

    print(f"gunicorn: configuration error: {problem}", file=sys.stderr, flush=True)
    raise SystemExit(Arbiter.APP_LOAD_ERROR)
if problem:
    raise ImproperlyConfigured(problem)
application = get_wsgi_application()
