"""Human-readable summaries of purge results and status, and the terminal progress bar."""

import time
from datetime import datetime

from django.utils import timezone


def format_result(result) -> str:
    cutoff = timezone.localtime(result.cutoff).strftime("%Y-%m-%d %H:%M:%S %Z")
    if result.dry_run:
        return _format_dry_run(result, cutoff)
    lines = [
        f"jobs expired before {cutoff}: deleted {result.jobs_deleted} job(s) in "
        f"{result.batches or 1} batch(es), {result.duration_seconds:.2f}s",
        "",
        *_rows_table(result.rows_deleted, result.rows_total),
        "",
        f"  files deleted: {result.files_deleted}",
        f"  files still pending: {result.files_pending}",
    ]
    if result.files_stuck:
        lines.append(f"  files stuck (refused again; see purge_status): {result.files_stuck}")
    if result.files_refused:
        lines.append(f"  file names refused (never sent to storage): {result.files_refused}")
    lines.append(f"  run #{result.run_id}: {result.status}")
    return "\n".join(lines)


def _format_dry_run(result, cutoff) -> str:
    lines = [
        f"Dry run (nothing deleted): jobs expired before {cutoff}: would delete "
        f"{result.would_delete_jobs} job(s), {result.duration_seconds:.2f}s",
        "",
        *_rows_table(result.would_delete_rows, result.would_delete_rows_total),
        "",
        f"  would delete {result.would_delete_files} file(s) from storage",
        f"  run #{result.run_id}: {result.status}",
    ]
    return "\n".join(lines)


def _rows_table(rows: dict[str, int], total: int) -> list[str]:
    return [
        f"  {'model':<34}{'rows':>10}",
        *(f"  {label:<34}{count:>10}" for label, count in rows.items()),
        f"  {'total':<34}{total:>10}",
    ]


def summarize_run(result) -> str:
    """One line for a failed task's error: which run, how it ended, what it did, and why."""
    line = (
        f"purge run #{result.run_id} ended {result.status}: {result.jobs_deleted} job(s), "
        f"{result.rows_total} row(s), {result.files_deleted} file(s) deleted, "
        f"{result.files_pending} file(s) pending"
    )
    return f"{line}. {result.error}" if result.error else line


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
    for reason in status.pending_reasons[:3]:
        lines.append(f"  {'':<30}last error: {reason}")
    if status.stuck_files:
        oldest = format_duration(status.oldest_stuck_seconds or 0)
        lines.append(
            f"  {'stuck file deletions:':<30}{status.stuck_files} (oldest: pending for {oldest}; "
            "a person must look, then mark them resolved in the admin)"
        )
        for reason in status.stuck_reasons[:3]:
            lines.append(f"  {'':<30}reason: {reason}")
    if status.refused_files:
        reasons = ", ".join(f"{n} {reason}" for reason, n in (status.refused_reasons or {}).items())
        lines.append(f"  {'refused file names:':<30}{status.refused_files} ({reasons})")
    return "\n".join(lines + _run_lines(status.last_success, status.last_run))


def _run_lines(success, last) -> list[str]:
    if success is None:
        lines = [f"  {'last successful purge:':<30}none recorded"]
    else:
        lines = [
            f"  {'last successful purge:':<30}run #{success['run_id']} ({success['trigger']}), "
            f"finished {_local(success['finished_at'])}",
            *_subtask_lines(success),
            f"  {'':<30}{success['jobs_deleted']} job(s), "
            f"{sum(success['rows_deleted'].values())} row(s), "
            f"{success['files_deleted']} file(s) deleted",
        ]
    if last is not None and last != success:
        lines.append(
            f"  {'latest run:':<30}run #{last['run_id']} ({last['trigger']}) {last['status']}, "
            f"started {_local(last['started_at'])}"
        )
        lines.extend(_subtask_lines(last))
        if last["status"] in ("running", "handed_over"):
            lines.append(
                f"  {'':<30}so far {last['jobs_deleted']} job(s), "
                f"{last['files_deleted']} file(s) deleted"
            )
    return lines


def _subtask_lines(run) -> list[str]:
    ids = [r["run_id"] for r in run.get("runs") or []]
    if len(ids) < 2:
        return []
    shown = ", ".join(f"#{i}" for i in ids[:6]) + (", ..." if len(ids) > 6 else "")
    return [f"  {'':<30}fan-out over {len(ids)} run(s): {shown}"]


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
        f"  incomplete uploads past grace with no live job: {result.uploads_orphaned} "
        f"({result.uploads_aborted} aborted), kept: {result.uploads_kept}",
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


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def retention_facts(status) -> list[dict]:
    """The status in sentences for the Retention page: heading, text and the run it names."""
    success, last = status.last_success, status.last_run
    expired, pending, stuck = status.expired_jobs, status.pending_files, status.stuck_files
    overdue = format_duration(status.most_overdue_seconds or 0)
    waiting = format_duration(status.oldest_pending_seconds or 0)
    facts = [
        (
            "Expired jobs",
            None,
            f"{_plural(expired, 'expired job')} still present; the most overdue is {overdue} "
            "past its expiry."
            if expired
            else "none present: every job past its expiry is gone.",
        ),
        (
            "Pending file deletions",
            None,
            f"{pending:,}, the oldest for {waiting}." if pending else "none.",
        ),
        (
            "Stuck file deletions",
            None,
            f"{stuck:,}, storage keeps refusing them." if stuck else "none.",
        ),
        (
            "Last successful purge",
            success and success["run_id"],
            _run_sentence(success, finished=True) if success else "none recorded.",
        ),
    ]
    if last is not None and last != success:
        facts.append(("Latest run", last["run_id"], _run_sentence(last, finished=False)))
    return [{"heading": h, "run_id": run_id, "text": text} for h, run_id, text in facts]


def _run_sentence(run, *, finished: bool) -> str:
    when = _local(run["finished_at"] if finished else run["started_at"])
    rows = sum(run["rows_deleted"].values())
    text = (
        f"run #{run['run_id']} ({run['trigger']}), {run['status']}, "
        f"{'finished' if finished else 'started'} {when}: "
        f"{_plural(run['jobs_deleted'], 'job')}, {_plural(rows, 'row')} and "
        f"{_plural(run['files_deleted'], 'file')} deleted"
    )
    if run["files_pending"]:
        text += f", {run['files_pending']:,} file(s) left pending"
    if len(run.get("runs") or []) > 1:
        text += f"; a fan-out over {_plural(len(run['runs']), 'run')}"
    return text + "."
