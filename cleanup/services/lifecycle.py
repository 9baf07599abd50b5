"""The lifecycle backstop: if every worker is down for days, S3 itself deletes the jobs' files
(docs/backstop.md). Lone delete markers have a rule of their own: S3 refuses them beside Days."""

import math
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings

from .. import storage
from ..file_models import upload_rule
from ..storage.s3 import key_prefix, read_lifecycle, write_lifecycle

BACKSTOP_RULE_ID = "fmr-jobs-backstop"
MARKERS_RULE_ID = "fmr-jobs-delete-markers"
DAY = timedelta(days=1)


class LifecycleFailed(Exception):
    """The bucket's lifecycle configuration could not be read or written; nothing changed."""


@dataclass
class Lifecycle:
    bucket: str
    prefix: str  # the key prefix the rules cover
    rules: list[dict]  # the bucket's (plan_lifecycle: with the backstop merged in)
    backstop: bool  # our rules were in place, as storage_lifecycle writes them
    too_short: list[str] = field(default_factory=list)  # rules that would delete live files


def expiration_days(ttl: timedelta) -> int:
    return math.ceil((ttl + DAY) / DAY)


def backstop_rules(prefix: str) -> list[dict]:
    only_jobs = {"Status": "Enabled", "Filter": {"Prefix": prefix}}
    return [
        {
            "ID": BACKSTOP_RULE_ID,
            **only_jobs,
            "Expiration": {"Days": expiration_days(settings.JOB_TTL)},
            "NoncurrentVersionExpiration": {"NoncurrentDays": 1},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        },
        {"ID": MARKERS_RULE_ID, **only_jobs, "Expiration": {"ExpiredObjectDeleteMarker": True}},
    ]


def plan_lifecycle(*, apply: bool = False) -> Lifecycle | None:
    """The bucket's lifecycle with the backstop merged in, written when `apply` and it differs."""
    if (plan := lifecycle_findings()) is None:
        return None
    ours = {rule["ID"]: rule for rule in backstop_rules(plan.prefix)}
    plan.rules = [ours.pop(rule.get("ID"), rule) for rule in plan.rules] + list(ours.values())
    if apply and not plan.backstop:
        try:
            write_lifecycle(storage.get_storage(), plan.rules)
        except Exception as exc:
            raise LifecycleFailed(storage.describe_error(exc)) from exc
    return plan


def lifecycle_findings() -> Lifecycle | None:
    """Whether the backstop is in place, and the rules that would delete live files; None: local."""
    s3 = storage.get_storage()
    if not storage.is_s3(s3):
        return None
    try:
        prefix, rules = key_prefix(s3, f"{upload_rule().prefix}/"), read_lifecycle(s3)
    except Exception as exc:
        raise LifecycleFailed(storage.describe_error(exc)) from exc
    # Only the fields we write: a server may add its own defaults to what it returns.
    found = {rule.get("ID"): rule for rule in rules}
    ours = backstop_rules(prefix)
    backstop = all({k: found.get(r["ID"], {}).get(k) for k in r} == r for r in ours)
    findings = Lifecycle(s3.bucket_name, prefix, rules, backstop)
    for rule in rules:
        where = rule.get("Filter") or {}
        where = where.get("And") or where  # a Filter holds one of Prefix, And, ...
        theirs = rule.get("Prefix") or where.get("Prefix") or ""
        covers = prefix.startswith(theirs) or theirs.startswith(prefix)
        if rule.get("Status") != "Enabled" or not covers:
            continue
        name, expiration = f"'{rule.get('ID', '(no ID)')}'", rule.get("Expiration") or {}
        if "Date" in expiration:
            findings.too_short.append(f"{name} expires every object on {expiration['Date']:%F}")
        elif "Days" in expiration and expiration["Days"] * DAY < settings.JOB_TTL:
            findings.too_short.append(f"{name} expires objects after {expiration['Days']} day(s)")
    return findings
