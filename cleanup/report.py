"""Human-readable summaries of purge results."""

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
    lines.append(f"  run #{result.run_id}: {result.status}")
    return "\n".join(lines)


def format_reconcile(result, *, examples=False) -> str:
    cutoff = timezone.localtime(result.cutoff).strftime("%Y-%m-%d %H:%M:%S %Z")
    lines = [
        f"objects under the upload prefix: {result.scanned} ({result.scanned_bytes} bytes), "
        f"{result.duration_seconds:.2f}s",
        f"  newer than {cutoff}, left alone: {result.young}",
        f"  named by a row or a pending deletion: {result.held}",
        f"  orphans: {result.orphans} ({result.orphan_bytes} bytes)",
    ]
    if result.delete:
        lines.append(
            f"  orphans deleted: {result.deleted} ({result.deleted_bytes} bytes), "
            f"not deleted: {result.failed}"
        )
    elif result.orphans:
        lines.append("  nothing deleted (report only; --delete deletes them)")
    if examples and result.examples:
        lines.append("  some orphans: " + ", ".join(result.examples))
    return "\n".join(lines)
