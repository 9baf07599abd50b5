"""The cleanup app's business logic. Commands, tasks, views and admin call only these.

purge: deleting expired jobs (the purge itself); files: storage deletes of pending names;
fanout: splitting a large backlog over Celery workers; status: what operators see;
reconcile: stored objects nothing names; binding: which storage the database's files live in.
"""

from .binding import (
    BindingState,
    Rebinding,
    bind_storage,
    binding_state,
    ensure_storage_bound,
    verify_storage,
)
from .errors import PurgeNotPossible, StorageNotVerified
from .fanout import SUBTASK_EXPIRES_SECONDS, ChunkResult, PurgePlan, plan_purge, purge_expired_chunk
from .files import FileDeletion, delete_pending_files
from .purge import PurgeResult, purge_expired_jobs
from .reconcile import RECONCILE_GRACE, ReconcileFailed, ReconcileResult, reconcile_storage
from .status import (
    PurgeStatus,
    count_expired_jobs,
    overdue_limit,
    purge_status,
    retry_pending_files,
)

__all__ = [
    "RECONCILE_GRACE",
    "SUBTASK_EXPIRES_SECONDS",
    "BindingState",
    "ChunkResult",
    "FileDeletion",
    "PurgeNotPossible",
    "PurgePlan",
    "PurgeResult",
    "PurgeStatus",
    "Rebinding",
    "ReconcileFailed",
    "ReconcileResult",
    "StorageNotVerified",
    "bind_storage",
    "binding_state",
    "count_expired_jobs",
    "delete_pending_files",
    "ensure_storage_bound",
    "overdue_limit",
    "plan_purge",
    "purge_expired_chunk",
    "purge_expired_jobs",
    "purge_status",
    "reconcile_storage",
    "retry_pending_files",
    "verify_storage",
]
