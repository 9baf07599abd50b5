"""The cleanup app's business logic. Commands, tasks, views and admin call only these.

purge: deleting expired jobs (the purge itself); files: storage deletes of pending names;
fanout: splitting a large backlog over Celery workers; runs: run records (dead runs, the
backlog a run starts with, a purge's runs read as one); status: what operators see; history:
the purge's past, for plots and counters; ledger: the destruction ledger; reconcile: stored objects
nothing names; readiness: storage and schedules in place (the system checks); clock: whose
clock decides what has expired; binding: which storage the database's files live in.
"""

from .binding import (
    BindingState,
    Rebinding,
    bind_storage,
    binding_state,
    ensure_storage_bound,
    verify_storage,
)
from .clock import CutoffRefused, database_now, parse_cutoff, purge_cutoff
from .errors import PurgeNotPossible, StorageNotVerified
from .fanout import PurgePlan, plan_purge, purge_expired_chunk
from .files import FileDeletion, delete_pending_files
from .history import RetentionHistory, RunTotals, retention_history, run_totals
from .ledger import LedgerBroken, as_csv_row, ledger_fields, ledger_models, purge_log, verify_ledger
from .purge import purge_expired_jobs
from .readiness import SCHEDULES, Schedule, ScheduleState, check_schedules, check_storage
from .reconcile import RECONCILE_GRACE, ReconcileFailed, ReconcileResult, reconcile_storage
from .runs import SUBTASK_EXPIRES_SECONDS, record_unsent
from .status import (
    PurgeStatus,
    count_expired_jobs,
    overdue_limit,
    purge_status,
    resolve_stuck_files,
    retry_pending_files,
)
from .verdict import PurgeSchedule, Verdict, purge_schedule, retention_verdict

__all__ = [
    "RECONCILE_GRACE",
    "SCHEDULES",
    "SUBTASK_EXPIRES_SECONDS",
    "BindingState",
    "CutoffRefused",
    "FileDeletion",
    "LedgerBroken",
    "as_csv_row",
    "ledger_fields",
    "verify_ledger",
    "PurgeNotPossible",
    "PurgePlan",
    "PurgeSchedule",
    "PurgeStatus",
    "Verdict",
    "purge_schedule",
    "retention_verdict",
    "Rebinding",
    "ReconcileFailed",
    "ReconcileResult",
    "RetentionHistory",
    "RunTotals",
    "Schedule",
    "ScheduleState",
    "check_schedules",
    "check_storage",
    "StorageNotVerified",
    "bind_storage",
    "binding_state",
    "count_expired_jobs",
    "database_now",
    "delete_pending_files",
    "ledger_models",
    "ensure_storage_bound",
    "overdue_limit",
    "parse_cutoff",
    "plan_purge",
    "purge_expired_chunk",
    "purge_cutoff",
    "purge_expired_jobs",
    "purge_log",
    "purge_status",
    "reconcile_storage",
    "record_unsent",
    "retention_history",
    "resolve_stuck_files",
    "retry_pending_files",
    "run_totals",
    "verify_storage",
]
