from django.apps import AppConfig


class CleanupConfig(AppConfig):
    name = "cleanup"

    def ready(self):
        from . import checks, receivers  # noqa: F401 - checks registers the system checks

        receivers.connect_file_receivers()
