"""Settings for purge subprocesses in tests: production settings with slow local storage.

Run a child with DJANGO_SETTINGS_MODULE=tests.slow_settings (and FMR_TEST_STORAGE_DELAY in
seconds per delete) so it is still busy when the test kills it or cuts its database off.
"""

from fmr.settings import *  # noqa: F403

STORAGES = {
    **STORAGES,  # noqa: F405
    "default": {"BACKEND": "tests.faulty_storage.SlowFileSystemStorage"},
}
