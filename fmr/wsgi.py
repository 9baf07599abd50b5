import os
import sys

from django.core.wsgi import get_wsgi_application

from .boot import settings_or_exit

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fmr.settings")

if "gunicorn" in sys.modules:
    from gunicorn.arbiter import Arbiter

    # "App failed to load" stops the master (with --preload too): no traceback per worker.
    settings_or_exit("gunicorn", Arbiter.APP_LOAD_ERROR)
application = get_wsgi_application()
