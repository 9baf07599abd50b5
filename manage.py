#!/usr/bin/env python
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fmr.settings")
    from django.core.management import execute_from_command_line
    from django.db import Error

    from fmr.boot import exit_with, one_line, settings_or_exit

    # Unusable settings end every command here, in one line, before any command runs.
    settings_or_exit("manage.py")
    try:
        execute_from_command_line(sys.argv)
        sys.stdout.flush()
    except Error as exc:
        # Unreachable or failing mid-command: the database's own sentence, never a traceback.
        exit_with("manage.py", f"database error: {type(exc).__name__}: {one_line(exc)}")
    except BrokenPipeError:
        # The reader went away (`list_jobs | head`): nothing more can be written to it.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        exit_with("manage.py", "output closed before the command finished (broken pipe)")


if __name__ == "__main__":
    main()
