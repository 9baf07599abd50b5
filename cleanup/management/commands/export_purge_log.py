import csv
import json

from django.core.management.base import CommandError

from cleanup.services import LedgerBroken, as_csv_row, ledger_fields, purge_log, verify_ledger
from fmr.commands import StrictCommand, argument_type
from fmr.parsing import parse_day


class Command(StrictCommand):
    help = (
        "The destruction ledger, counts only: one hash-chained line per purge run started from "
        "--since to --until (days included, Asia/Seoul), as CSV or JSON Lines (--format json). "
        "--verify FILE checks an exported file instead."
    )

    def add_arguments(self, parser):
        day = argument_type(parse_day)
        parser.add_argument("--since", type=day, metavar="YYYY-MM-DD", help="First day, included.")
        parser.add_argument("--until", type=day, metavar="YYYY-MM-DD", help="Last day, included.")
        parser.add_argument("--format", choices=["csv", "json"], default="csv")
        parser.add_argument("--verify", metavar="FILE", help="Check an exported file's hash chain.")

    def handle(self, *args, **options):
        if options["verify"]:
            return self.verify(options["verify"])
        if not (options["since"] and options["until"]):
            raise CommandError("--since and --until are required (or --verify FILE)")
        try:
            lines = purge_log(since=options["since"], until=options["until"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if options["format"] == "json":
            for line in lines:
                self.stdout.write(json.dumps(line, ensure_ascii=False))
            return
        # Django's stdout ends each write() with a newline: one row, one line.
        writer = csv.writer(self.stdout, lineterminator="")
        writer.writerow(ledger_fields())
        writer.writerows(map(as_csv_row, lines))

    def verify(self, path):
        try:
            with open(path, encoding="utf-8", newline="") as file:
                count, last = verify_ledger(file)
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {path}: {type(exc).__name__}") from None
        except LedgerBroken as exc:
            raise CommandError(f"{path}: broken at {exc}") from None
        self.stdout.write(f"{path}: intact, {count} line(s), last hash {last}")
