import contextlib
import logging
import signal
import threading

from django.core.management.base import CommandError
from django.db import DatabaseError

from cleanup.models import PurgeRun
from cleanup.report import ProgressBar, format_result, show
from cleanup.services import CutoffRefused, PurgeNotPossible, count_expired_jobs, purge_expired_jobs
from cleanup.storage import describe_error
from fmr.commands import StrictCommand, argument_type
from fmr.parsing import MAX_SIZE, parse_int

positive_int = argument_type(
    parse_int, minimum=1, expected=f"a positive whole number up to {MAX_SIZE}"
)


class Command(StrictCommand):
    help = "Delete jobs past their expiry with every row and file attached to them."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Count only; change nothing.")
        parser.add_argument(
            "--batch-size",
            type=positive_int,
            help="Jobs deleted per transaction (default: the CLEANUP_BATCH_SIZE setting).",
        )
        parser.add_argument("--limit", type=positive_int, help="Stop after this many jobs.")
        parser.add_argument("--json", action="store_true", help="Print the summary as JSON.")

    def handle(self, *args, **options):
        with self._at_the_terminal(options) as (stopping, bar):
            try:
                run = purge_expired_jobs(
                    batch_size=options["batch_size"],
                    limit=options["limit"],
                    dry_run=options["dry_run"],
                    trigger=PurgeRun.Trigger.COMMAND,
                    should_stop=stopping.is_set,
                    on_batch=bar and bar.update,
                )
            except (PurgeNotPossible, CutoffRefused) as exc:
                raise CommandError(str(exc)) from exc
            except DatabaseError as exc:
                raise CommandError(
                    f"the purge failed on the database: {describe_error(exc)}. Committed batches "
                    "stay purged, no job is half deleted; the next run continues."
                ) from exc
        show(self, options, run.as_dict(), format_result(run))
        if run.status == PurgeRun.Status.INTERRUPTED:
            done = f"interrupted after {run.jobs_deleted} job(s) in whole batches (run #{run.pk})"
            raise CommandError(done, returncode=130)  # as shells report a process ended by SIGINT
        if not run.ok:
            raise CommandError(run.error or f"purge ended with status {run.status}")

    @contextlib.contextmanager
    def _at_the_terminal(self, options):
        """A progress bar on a terminal only (not in pipes, logs, --json, -v 0), in place of the log
        lines (-v 0: none, -v 2: kept, no bar). Ctrl-C stops after a batch; a second aborts it."""
        bar, stopping = None, threading.Event()
        plain = not (options["dry_run"] or options["json"]) and options["verbosity"] == 1
        if plain and self.stderr.isatty():
            with contextlib.suppress(DatabaseError):  # the purge then says what is wrong with it
                total = min(count_expired_jobs(), options["limit"] or MAX_SIZE)
                bar = ProgressBar(self.stderr, total) if total else None
        logger = logging.getLogger("cleanup")  # the app's, above its modules
        quiet, level = bar is not None or options["verbosity"] == 0, logger.level
        logger.setLevel(logging.WARNING if quiet else level)

        def first_interrupt(signum, frame):
            stopping.set()
            signal.signal(signal.SIGINT, previous)
            self.stderr.write("\nStopping after the current batch (Ctrl-C again to abort it).")

        main = threading.current_thread() is threading.main_thread()  # where handlers can be set
        previous = signal.signal(signal.SIGINT, first_interrupt) if main else None
        try:
            yield stopping, bar
        finally:
            logger.setLevel(level)
            if bar:
                bar.close()
            if main:
                signal.signal(signal.SIGINT, previous)
