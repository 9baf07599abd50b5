import sys

from django.core.wsgi import get_wsgi_application

from .boot import settings_or_exit

if "gunicorn" in sys.modules:
    # 4 is gunicorn's APP_LOAD_ERROR: it stops the master (--preload too), no traceback per worker.
    settings_or_exit("gunicorn", 4)
application = get_wsgi_application()
