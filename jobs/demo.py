"""Realistic jobs with the full fan-out (19 rows, 4 files) for the demo, tests and benchmarks."""

import random

from django.core.files.base import ContentFile
from django.db import transaction

from . import models as m

ROWS_PER_JOB = 19
FILES_PER_JOB = 4
KINDS = [m.JobFile.Kind.ORIGINAL] + [m.JobFile.Kind.AI_GENERATED] * 3


def create_full_job(*, created_at=None, rng=None, with_files=True) -> m.Job:
    """One job as production makes it: a photo, three AI images, SMS, verification, payment."""
    rng = rng or random.Random()
    phone = f"010-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}"
    with transaction.atomic():
        job = m.Job.objects.create(created_at=created_at, status="report_ready")
        for index, kind in enumerate(KINDS if with_files else []):
            data = b"\x89PNG\r\n\x1a\n" + rng.randbytes(256)  # distinct, non-empty objects
            job_file = m.JobFile(job=job, kind=kind, content_type="image/png", size=len(data))
            job_file.file.save(f"photo-{index}.png", ContentFile(data), save=True)
        code = f"{rng.randint(0, 999999):06d}"
        sms = {"phone_number": phone, "message": f"[fmr] 인증번호 {code}를 입력해 주세요."}
        for attempt in (1, 2, 3):  # three codes sent and three attempts, the last one verified
            sent = {"status": "delivered", "provider_message_id": f"msg-{rng.getrandbits(48):012x}"}
            job.sms_logs.create(**sms, **sent)
            tried = {"code": code, "verified": attempt == 3, "attempt_count": attempt}
            job.phone_verification_attempts.create(phone_number=phone, **tried)
        declined = {"code": "CARD_DECLINED", "message": "카드사에서 승인을 거절했습니다."}
        job.payment_failures.create(provider="toss", amount=9900, **declined)
        paid = {"provider": "kakaopay", "status": "approved", "approved_at": job.created_at}
        paid["provider_transaction_id"] = f"T{rng.getrandbits(64):016x}"
        m.Payment.objects.create(job=job, amount=9900, **paid)
        report = m.Report.objects.create(job=job, title="나의 AI 리포트", body="분석 결과 ...")
        topics = [{"report": report, "position": i, "topic": f"topic {i}"} for i in range(5)]
        m.ReportKnowledge.objects.bulk_create(m.ReportKnowledge(**t, content="...") for t in topics)
    return job
