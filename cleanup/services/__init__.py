"""The cleanup app's business logic. Commands, tasks, views and admin call only these.

purge: deleting expired jobs (the purge itself); files: storage deletes of pending names;
fanout: splitting a large backlog over Celery workers; status: what operators see;
reconcile: stored objects nothing names; readiness: storage and schedules in place (the system
checks).
"""

from .fanout import SUBTASK_EXPIRES_SECONDS, ChunkResult, PurgePlan, plan_purge, purge_expired_chunk
from .files import FileDeletion, delete_pending_files
from .purge import PurgeNotPossible, PurgeResult, purge_expired_jobs
from .readiness import SCHEDULES, Schedule, ScheduleState, check_schedules, check_storage
from .reconcile import RECONCILE_GRACE, ReconcileResult, reconcile_storage
from .status import (
    PurgeStatus,
    count_expired_jobs,
    overdue_limit,
    purge_status,
    retry_pending_files,
)

__all__ = [
    "RECONCILE_GRACE",
    "SCHEDULES",
    "SUBTASK_EXPIRES_SECONDS",
    "ChunkResult",
    "FileDeletion",
    "PurgeNotPossible",
    "PurgePlan",
    "PurgeResult",
    "PurgeStatus",
    "ReconcileResult",
    "Schedule",
    "ScheduleState",
    "check_schedules",
    "check_storage",
    "count_expired_jobs",
    "delete_pending_files",
    "overdue_limit",
    "plan_purge",
    "purge_expired_chunk",
    "purge_expired_jobs",
    "purge_status",
    "reconcile_storage",
    "retry_pending_files",
]
