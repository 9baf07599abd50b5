import logging
import signal
import threading
from contextlib import contextmanager

from django.core.management.base import CommandError
from django.db import DatabaseError

from cleanup.models import PurgeRun
from cleanup.report import ProgressBar, format_result, show
from cleanup.services import CutoffRefused, PurgeNotPossible, count_expired_jobs, purge_expired_jobs
from cleanup.storage import describe_error
from fmr.commands import StrictCommand, argument_type
from fmr.parsing import MAX_SIZE, parse_int

positive_int = argument_type(
    parse_int, minimum=1, maximum=MAX_SIZE, expected=f"a positive whole number up to {MAX_SIZE}"
)


class Command(StrictCommand):
    help = "Delete jobs past their expiry with every row and file attached to them."

    def add_arguments(self, parser):
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would be deleted; change nothing."
        )
        parser.add_argument(
            "--batch-size",
            type=positive_int,
            help="Jobs deleted per transaction (default: the CLEANUP_BATCH_SIZE setting).",
        )
        parser.add_argument("--limit", type=positive_int, help="Stop after this many jobs.")
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")

    def handle(self, *args, **options):
        bar = self._progress_bar(options)
        logger = logging.getLogger("cleanup")  # the app's, above its modules
        level = logger.level
        # The bar replaces the per-batch log lines; -v 0 silences them, -v 2 keeps them (no bar).
        if bar is not None or options["verbosity"] == 0:
            logger.setLevel(logging.WARNING)
        with stop_on_first_sigint(self.stderr) as stopping:
            try:
                run = purge_expired_jobs(
                    batch_size=options["batch_size"],
                    limit=options["limit"],
                    dry_run=options["dry_run"],
                    trigger=PurgeRun.Trigger.COMMAND,
                    should_stop=stopping.is_set,
                    on_batch=bar.update if bar else None,
                )
            except (PurgeNotPossible, CutoffRefused) as exc:
                raise CommandError(str(exc)) from exc
            except DatabaseError as exc:
                raise CommandError(_database_failure(exc)) from exc
            finally:
                logger.setLevel(level)
                if bar:
                    bar.close()
        show(self, options, run.as_dict(), format_result(run))
        if run.status == PurgeRun.Status.INTERRUPTED:
            raise CommandError(
                f"interrupted after {run.jobs_deleted} job(s); every batch finished, "
                f"run #{run.pk} recorded as interrupted",
                returncode=130,  # as shells report a process ended by SIGINT
            )
        if not run.ok:
            raise CommandError(run.error or f"purge ended with status {run.status}")

    def _progress_bar(self, options):
        # For a person at a terminal only: never in pipes, logs, --json or -v 0 output.
        if options["dry_run"] or options["json"] or options["verbosity"] != 1:
            return None
        if not self.stderr.isatty():
            return None
        try:
            total = min(count_expired_jobs(), options["limit"] or MAX_SIZE)
        except DatabaseError:
            return None  # the purge itself then says what is wrong with the database
        return ProgressBar(self.stderr, total) if total else None


@contextmanager
def stop_on_first_sigint(err):
    """The first Ctrl-C stops the purge after its batch; a second aborts it (rolled back)."""
    stopping = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stopping  # signal handlers can only be installed from the main thread
        return

    def first_interrupt(signum, frame):
        stopping.set()
        signal.signal(signal.SIGINT, previous)
        err.write("\nStopping after the current batch (Ctrl-C again to abort it).")

    previous = signal.signal(signal.SIGINT, first_interrupt)
    try:
        yield stopping
    finally:
        signal.signal(signal.SIGINT, previous)


def _database_failure(exc) -> str:
    run = getattr(exc, "purge_result", None)
    if run and not (run.jobs_deleted or run.files_deleted):
        done = "Nothing was deleted"
    else:
        done = "Batches committed before the failure stay purged, no job is half deleted"
    return (
        f"the purge failed on the database: {describe_error(exc)}. {done}; the next run continues."
    )
