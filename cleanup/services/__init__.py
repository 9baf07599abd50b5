"""The cleanup app's business logic: commands, tasks, views and admin call only these."""

# ruff: noqa: F401 - these imports are the package's public names, re-exported.

from .binding import bind_storage, binding_state, ensure_storage_bound, verify_storage
from .clock import CutoffRefused, purge_cutoff
from .errors import PurgeNotPossible, StorageNotVerified
from .fanout import plan_purge, purge_expired_chunk
from .files import delete_pending_files
from .history import (
    LedgerBroken,
    as_csv_row,
    ledger_fields,
    purge_log,
    retention_history,
    run_totals,
    verify_ledger,
)
from .purge import purge_expired_jobs
from .reconcile import RECONCILE_GRACE, ReconcileFailed, reconcile_storage
from .runs import SUBTASK_EXPIRES_SECONDS, record_unsent
from .verdict import (
    check_schedules,
    check_storage,
    count_expired_jobs,
    purge_schedule,
    purge_status,
    resolve_stuck_files,
    retention_verdict,
    retry_pending_files,
)
