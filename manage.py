#!/usr/bin/env python
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fmr.settings")
    from django.core.management import execute_from_command_line

    from fmr.boot import settings_or_exit

    # Unusable settings end every command here, in one line, before any command runs.
    settings_or_exit("manage.py")
    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
