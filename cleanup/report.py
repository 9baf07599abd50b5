"""Human-readable summaries of purge results and status, and the terminal progress bar."""

import time
from datetime import datetime

from django.utils import timezone


def format_result(result) -> str:
    verb = "would delete" if result.dry_run else "deleted"
    cutoff = timezone.localtime(result.cutoff).strftime("%Y-%m-%d %H:%M:%S %Z")
    lines = [
        f"{'Dry run: ' if result.dry_run else ''}jobs expired before {cutoff}: "
        f"{verb} {result.jobs_deleted} job(s) in {result.batches or 1} batch(es), "
        f"{result.duration_seconds:.2f}s",
        "",
        f"  {'model':<34}{'rows':>10}",
    ]
    for label, count in result.rows_deleted.items():
        lines.append(f"  {label:<34}{count:>10}")
    lines.append(f"  {'total':<34}{result.rows_total:>10}")
    lines.append("")
    lines.append(f"  files {verb}: {result.files_deleted}")
    if not result.dry_run:
        lines.append(f"  files still pending: {result.files_pending}")
        if result.files_refused:
            lines.append(f"  file names refused (never sent to storage): {result.files_refused}")
    lines.append(f"  run #{result.run_id}: {result.status}")
    return "\n".join(lines)


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _local(iso: str | None) -> str:
    if not iso:
        return "-"
    return timezone.localtime(datetime.fromisoformat(iso)).strftime("%Y-%m-%d %H:%M:%S %Z")


def format_status(status) -> str:
    checked = timezone.localtime(status.checked_at).strftime("%Y-%m-%d %H:%M:%S %Z")
    overdue = ""
    if status.most_overdue_seconds is not None:
        overdue = f" (most overdue: {format_duration(status.most_overdue_seconds)} past expiry)"
    pending = ""
    if status.oldest_pending_seconds is not None:
        pending = f" (oldest: pending for {format_duration(status.oldest_pending_seconds)})"
    lines = [
        f"Purge status at {checked}",
        f"  {'expired jobs still present:':<30}{status.expired_jobs}{overdue}",
        f"  {'pending file deletions:':<30}{status.pending_files}{pending}",
    ]
    if status.refused_files:
        reasons = ", ".join(f"{n} {reason}" for reason, n in (status.refused_reasons or {}).items())
        lines.append(f"  {'refused file names:':<30}{status.refused_files} ({reasons})")
    success = status.last_success
    if success is None:
        lines.append(f"  {'last successful purge:':<30}none recorded")
    else:
        lines.append(
            f"  {'last successful purge:':<30}run #{success['run_id']} ({success['trigger']}), "
            f"finished {_local(success['finished_at'])}"
        )
        lines.append(
            f"  {'':<30}{success['jobs_deleted']} job(s), "
            f"{sum(success['rows_deleted'].values())} row(s), "
            f"{success['files_deleted']} file(s) deleted"
        )
    last = status.last_run
    if last is not None and last != success:
        lines.append(
            f"  {'latest run:':<30}run #{last['run_id']} ({last['trigger']}) {last['status']}, "
            f"started {_local(last['started_at'])}"
        )
    return "\n".join(lines)


class ProgressBar:
    """A one-line progress bar with ETA, redrawn in place on a terminal."""

    WIDTH = 30

    def __init__(self, out, total: int, *, clock=time.monotonic):
        self.out = out
        self.total = max(total, 1)
        self.clock = clock
        self.started = clock()
        self.drawn = False

    def update(self, done: int):
        elapsed = self.clock() - self.started
        fraction = min(done / self.total, 1.0)
        filled = int(self.WIDTH * fraction)
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = format_duration((self.total - done) / rate) if rate and done < self.total else "-"
        self.out.write(
            f"\r[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{self.total} jobs "
            f"{fraction:4.0%}  {rate:,.0f} jobs/s  ETA {eta}  ",
            ending="",
            style_func=str,  # plain text, not Django's red for stderr
        )
        self.out.flush()
        self.drawn = True

    def close(self):
        if self.drawn:
            self.out.write("", style_func=str)
            self.out.flush()


def format_reconcile(result, *, examples=False) -> str:
    cutoff = timezone.localtime(result.cutoff).strftime("%Y-%m-%d %H:%M:%S %Z")
    lines = [
        f"objects under the upload prefix: {result.scanned} ({result.scanned_bytes} bytes), "
        f"{result.duration_seconds:.2f}s",
        f"  newer than {cutoff}, left alone: {result.young}",
        f"  named by a row or a pending deletion: {result.held}",
        f"  orphans: {result.orphans} ({result.orphan_bytes} bytes)",
    ]
    if result.refused:
        lines.append("  refused: nothing deleted (see the error)")
    elif result.delete:
        lines.append(
            f"  orphans deleted: {result.deleted} ({result.deleted_bytes} bytes), "
            f"not deleted: {result.failed}{' (forced)' if result.forced else ''}"
        )
    elif result.orphans:
        lines.append("  nothing deleted (report only; --delete deletes them)")
    if examples and result.examples:
        lines.append("  some orphans: " + ", ".join(result.examples))
    return "\n".join(lines)
