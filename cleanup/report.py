"""Texts for operators: purge results, the status (terminal, Retention page), the progress bar."""

import json
import time
from datetime import datetime

from django.utils import timezone


def show(command, options, facts: dict, text: str) -> None:
    """A command's output: the facts as JSON with --json, nothing at -v 0, else the text."""
    if options["json"]:
        command.stdout.write(json.dumps(facts, indent=2))
    elif options["verbosity"] > 0:
        command.stdout.write(text)


def local_time(moment) -> str:
    """A time (or its ISO text) in TIME_ZONE with its zone name; "-" for none."""
    moment = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M:%S %Z") if moment else "-"


def _lines(label: str, *texts) -> list[str]:
    return [f"  {label + ':' if label and not n else '':<30}{text}" for n, text in enumerate(texts)]


def format_reach(facts) -> str:
    where = facts["where"] + (f" at {facts['endpoint']}" if facts["endpoint"] else "")
    if facts["reachable"]:
        return f"reachable, {where}"
    return f"NOT reachable, {where} ({facts['problem']}: {facts['reason']})"


def format_result(result) -> str:
    cutoff = local_time(result.cutoff)
    if result.dry_run:
        head = (
            f"Dry run (nothing deleted): jobs expired before {cutoff}: would delete "
            f"{result.would_delete_jobs} job(s), {result.duration_seconds:.2f}s"
        )
        rows, total = result.would_delete_rows, result.would_delete_rows_total
        files = [f"  would delete {result.would_delete_files} file(s) from storage"]
    else:
        head = (
            f"jobs expired before {cutoff}: deleted {result.jobs_deleted} job(s) in "
            f"{result.batches or 1} batch(es), {result.duration_seconds:.2f}s"
        )
        rows, total = result.rows_deleted, result.rows_total
        counts = {
            "files deleted": result.files_deleted,
            "files still pending": result.files_pending,
            "files stuck (refused again; see purge_status)": result.files_stuck or None,
            "file names refused (never sent to storage)": result.files_refused or None,
        }
        files = [f"  {label}: {n}" for label, n in counts.items() if n is not None]
    table = [("model", "rows"), *rows.items(), ("total", total)]
    lines = [head, "", *(f"  {label:<34}{count:>10}" for label, count in table), "", *files]
    return "\n".join([*lines, f"  run #{result.run_id}: {result.status}"])


def summarize_run(result) -> str:
    """One line for a failed task's error: which run, how it ended, what it did, and why."""
    line = (
        f"purge run #{result.run_id} ended {result.status}: {result.jobs_deleted} job(s), "
        f"{result.rows_total} row(s), {result.files_deleted} file(s) deleted, "
        f"{result.files_pending} file(s) pending"
    )
    return f"{line}. {result.error}" if result.error else line


def format_duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {seconds:02d}s" if minutes else f"{seconds}s"


def format_status(status) -> str:
    """purge_status's text: the facts, the last purges, and storage when it was asked."""
    overdue = pending = ""
    if status.most_overdue_seconds is not None:
        overdue = f" (most overdue: {format_duration(status.most_overdue_seconds)} past expiry)"
    if status.oldest_pending_seconds is not None:
        pending = f" (oldest: pending for {format_duration(status.oldest_pending_seconds)})"
    lines = [
        f"Purge status at {local_time(status.checked_at)}",
        *_lines("expired jobs still present", f"{status.expired_jobs}{overdue}"),
        *_lines("pending file deletions", f"{status.pending_files}{pending}"),
        *_lines("", *(f"last error: {reason}" for reason in status.pending_reasons[:3])),
    ]
    if status.stuck_files:
        oldest = format_duration(status.oldest_stuck_seconds or 0)
        stuck = f"{status.stuck_files} (oldest: pending for {oldest}; a person must look, "
        lines += _lines("stuck file deletions", stuck + "then mark them resolved in the admin)")
        lines += _lines("", *(f"reason: {reason}" for reason in status.stuck_reasons[:3]))
    if status.refused_files:
        reasons = ", ".join(f"{n} {reason}" for reason, n in (status.refused_reasons or {}).items())
        lines += _lines("refused file names", f"{status.refused_files} ({reasons})")
    for heading, _run, phrases in _runs(status):
        lines += _lines(heading.lower(), *phrases)
    if status.storage:
        lines += _lines("storage", format_reach(status.storage))
    return "\n".join(lines)


def _runs(status):
    """The last successful purge, and the latest run when it is another: heading, run, phrases."""
    success, last = status.last_success, status.last_run
    yield "Last successful purge", success, _run_phrases(success, "finished")
    if last not in (None, success):
        yield "Latest run", last, _run_phrases(last, "started")


def _run_phrases(run, event: str) -> list[str]:
    """Which run (a purge: summed over its fan-out), when, what it deleted and left pending."""
    if run is None:
        return ["none recorded"]
    status = "" if event == "finished" else f" {run['status']}"
    phrases = [
        f"run #{run['run_id']} ({run['trigger']}){status}, {event} {local_time(run[f'{event}_at'])}"
    ]
    ids = [r["run_id"] for r in run.get("runs") or []]
    if len(ids) > 1:
        shown = ", ".join(f"#{i}" for i in ids[:6]) + (", ..." if len(ids) > 6 else "")
        phrases.append(f"fan-out over {len(ids)} run(s): {shown}")
    deleted = (
        f"{run['jobs_deleted']} job(s), {sum(run['rows_deleted'].values())} row(s), "
        f"{run['files_deleted']} file(s) deleted"
    )
    pending = f", {run['files_pending']} file(s) left pending" if run["files_pending"] else ""
    return [*phrases, deleted + pending]


def retention_facts(status) -> list[dict]:
    """The status in sentences for the Retention page: heading, text and the run it names."""
    expired = "none present: every job past its expiry is gone"
    if status.expired_jobs:
        overdue = format_duration(status.most_overdue_seconds or 0)
        expired = f"{status.expired_jobs} expired job(s) still present; the most overdue is "
        expired += f"{overdue} past its expiry"
    waiting = format_duration(status.oldest_pending_seconds or 0)
    pending = f"{status.pending_files}, the oldest for {waiting}" if status.pending_files else ""
    stuck = f"{status.stuck_files}, storage keeps refusing them" if status.stuck_files else ""
    facts = [("Expired jobs", None, expired), ("Pending file deletions", None, pending or "none")]
    facts.append(("Stuck file deletions", None, stuck or "none"))
    facts += [
        (heading, run and run["run_id"], "; ".join(text)) for heading, run, text in _runs(status)
    ]
    return [{"heading": h, "run_id": run_id, "text": f"{text}."} for h, run_id, text in facts]


class ProgressBar:
    """A one-line progress bar with ETA, redrawn in place on a terminal."""

    def __init__(self, out, total: int):
        self.out, self.total, self.started = out, max(total, 1), time.monotonic()
        self.drawn = False

    def update(self, done: int):
        elapsed = time.monotonic() - self.started
        fraction = min(done / self.total, 1.0)
        rate = done / elapsed if elapsed > 0 else 0.0
        eta = format_duration((self.total - done) / rate) if rate and done < self.total else "-"
        self.out.write(
            f"\r[{'#' * int(30 * fraction):.<30}] {done}/{self.total} jobs "
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
    lines = [
        f"objects under the upload prefix: {result.scanned} ({result.scanned_bytes} bytes), "
        f"{result.duration_seconds:.2f}s",
        f"  newer than {local_time(result.cutoff)}, left alone: {result.young}",
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


def format_binding(state, *, rebind: bool) -> str:
    bound = "nothing bound yet (the first file written binds its storage)"
    if state.bound:
        bound = f"{state.bound.describe()} (bound {local_time(state.bound_at)} by {state.bound_by})"
    lines = [
        f"  {'database files live in:':<26}{bound}",
        f"  {'this process uses:':<26}{state.configured.describe()}",
    ]
    if state.previous:
        lines.append(f"  {'before that:':<26}{state.previous}")
    if rebind:
        lines.append("Rebound." if state.changed else "Already bound to the configured storage.")
    elif state.bound and state.matches:
        lines.append("They match.")
    return "\n".join(lines)
