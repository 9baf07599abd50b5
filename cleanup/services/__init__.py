"""The cleanup app's business logic. Commands, tasks, views and admin call only these.

purge: deleting expired jobs (the purge itself); files: storage deletes of pending names;
fanout: splitting a large backlog over Celery workers; status: what operators see;
reconcile: stored objects nothing names; clock: whose clock decides what has expired.
"""

from .clock import CutoffRefused, database_now, parse_cutoff, purge_cutoff
from .fanout import SUBTASK_EXPIRES_SECONDS, ChunkResult, PurgePlan, plan_purge, purge_expired_chunk
from .files import FileDeletion, delete_pending_files
from .purge import PurgeNotPossible, PurgeResult, purge_expired_jobs
from .reconcile import RECONCILE_GRACE, ReconcileResult, reconcile_storage
from .status import (
    PurgeStatus,
    count_expired_jobs,
    overdue_limit,
    purge_status,
    resolve_stuck_files,
    retry_pending_files,
)

__all__ = [
    "RECONCILE_GRACE",
    "SUBTASK_EXPIRES_SECONDS",
    "ChunkResult",
    "CutoffRefused",
    "FileDeletion",
    "PurgeNotPossible",
    "PurgePlan",
    "PurgeResult",
    "PurgeStatus",
    "ReconcileResult",
    "count_expired_jobs",
    "database_now",
    "delete_pending_files",
    "overdue_limit",
    "parse_cutoff",
    "plan_purge",
    "purge_expired_chunk",
    "purge_cutoff",
    "purge_expired_jobs",
    "purge_status",
    "reconcile_storage",
    "resolve_stuck_files",
    "retry_pending_files",
]
