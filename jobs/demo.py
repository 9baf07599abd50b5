"""Realistic jobs with the full fan-out (19 rows, 4 files) for the demo, tests and benchmarks."""

import random
from datetime import datetime

from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone

from .models import (
    Job,
    JobFile,
    Payment,
    PaymentFailure,
    PhoneVerificationAttempt,
    Report,
    ReportKnowledge,
    SmsLog,
)

ROWS_PER_JOB = 19
FILES_PER_JOB = 4


def fake_phone(rng: random.Random) -> str:
    return f"010-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}"


def image_bytes(rng: random.Random, size=256) -> bytes:
    # A PNG signature and random payload: enough to be a distinct, non-empty object.
    return b"\x89PNG\r\n\x1a\n" + rng.randbytes(size)


def create_full_job(
    *, created_at: datetime | None = None, rng: random.Random | None = None, with_files=True
) -> Job:
    """One job as production makes it: a photo, three AI images, SMS, verification, payment."""
    rng = rng or random.Random()
    created_at = created_at or timezone.now()
    phone = fake_phone(rng)
    with transaction.atomic():
        job = Job.objects.create(created_at=created_at, status=Job.Status.REPORT_READY)
        if with_files:
            kinds = [JobFile.Kind.ORIGINAL] + [JobFile.Kind.AI_GENERATED] * 3
            for index, kind in enumerate(kinds):
                data = image_bytes(rng)
                job_file = JobFile(job=job, kind=kind, content_type="image/png", size=len(data))
                job_file.file.save(f"photo-{index}.png", ContentFile(data), save=True)
        _verification(job, phone, rng)
        PaymentFailure.objects.create(
            job=job,
            provider=Payment.Provider.TOSS,
            amount=9900,
            code="CARD_DECLINED",
            message="카드사에서 승인을 거절했습니다.",
        )
        Payment.objects.create(
            job=job,
            provider=Payment.Provider.KAKAOPAY,
            status=Payment.Status.APPROVED,
            amount=9900,
            provider_transaction_id=f"T{rng.getrandbits(64):016x}",
            approved_at=created_at,
        )
        report = Report.objects.create(job=job, title="나의 AI 리포트", body="분석 결과 ...")
        ReportKnowledge.objects.bulk_create(
            ReportKnowledge(report=report, position=i, topic=f"topic {i}", content="...")
            for i in range(5)
        )
    return job


def _verification(job, phone, rng):
    """Three SMS codes sent and three attempts, the last one verified."""
    code = f"{rng.randint(0, 999999):06d}"
    for attempt in range(3):
        SmsLog.objects.create(
            job=job,
            phone_number=phone,
            message=f"[fmr] 인증번호 {code}를 입력해 주세요.",
            status=SmsLog.Status.DELIVERED,
            provider_message_id=f"msg-{rng.getrandbits(48):012x}",
        )
        PhoneVerificationAttempt.objects.create(
            job=job, phone_number=phone, code=code, verified=attempt == 2, attempt_count=attempt + 1
        )
