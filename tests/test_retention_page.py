"""The admin's Retention page and the run page: the facts in words, seven days of plots, rows
per model as a table; in a real browser, in light and in dark mode (screenshots as artifacts)."""

import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from cleanup.models import PurgeRun
from cleanup.services import plan_purge, purge_expired_jobs
from tests.admin_helpers import ensure_purge_schedule
from tests.browser import ARTIFACTS, log_in
from tests.helpers import bulk_expired_jobs, expired_job, run_fan_out

pytestmark = pytest.mark.django_db

PAGE = "/admin/cleanup/retention/"


def run_url(run_id):
    return f"/admin/cleanup/purgerun/{run_id}/change/"


class _Svgs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.svgs = []

    def handle_starttag(self, tag, attrs):
        if tag == "svg":
            self.svgs.append(dict(attrs))


def svgs(html):
    parser = _Svgs()
    parser.feed(html)
    return parser.svgs


def history():
    """A week of runs, as the hourly purge leaves them."""
    now = timezone.now()
    for hours_ago in range(0, 24 * 7, 5):
        started = now - timedelta(hours=hours_ago)
        PurgeRun.objects.create(
            trigger=PurgeRun.Trigger.BEAT,
            cutoff=started,
            batch_size=5000,
            started_at=started,
            finished_at=started + timedelta(seconds=30),
            status=PurgeRun.Status.SUCCEEDED,
            jobs_deleted=100 + hours_ago,
            rows_deleted={"jobs.Job": 100 + hours_ago},
            files_deleted=4 * (100 + hours_ago),
            expired_at_start=100 + hours_ago,
            oldest_expired_seconds_at_start=600 + hours_ago * 10,
            pending_files_at_end=hours_ago % 3,
        )


def test_staff_see_the_facts_in_words_and_four_plots(admin_client):
    history()
    expired_job(by=timedelta(hours=2), with_files=False)
    done = purge_expired_jobs(trigger=PurgeRun.Trigger.BEAT)
    expired_job(by=timedelta(minutes=30), with_files=False)

    response = admin_client.get(PAGE)

    assert response.status_code == 200
    html = response.content.decode()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    assert "1 expired job still present" in text or "1 expired job(s) still present" in text
    assert "pending file deletions: none" in text.lower() or "no file deletion" in text.lower()
    assert f"run #{done.run_id}" in text
    plots = [s for s in svgs(html) if s.get("role") == "img"]
    assert len(plots) >= 4, plots
    titles = " ".join(s.get("aria-label", "") for s in plots).lower()
    for words in ["jobs purged per hour", "expired", "oldest", "pending"]:
        assert words in titles, (words, titles)
    # No script, no external asset: drawn on the server.
    assert "<script" not in html.split('<div id="retention"', 1)[-1].split("</main>")[0]
    # Colours come from the admin's theme, so dark mode is dark.
    assert "currentColor" in html and "var(--" in html


def test_the_backlog_and_pending_history_is_recorded_by_each_run():
    expired_job(by=timedelta(hours=3), with_files=False)
    expired_job(by=timedelta(hours=1), with_files=False)
    result = purge_expired_jobs()
    run = PurgeRun.objects.get(pk=result.run_id)
    assert run.expired_at_start == 2
    assert 3 * 3600 <= run.oldest_expired_seconds_at_start < 3 * 3600 + 60
    assert run.pending_files_at_end == 0


def test_the_page_is_linked_from_the_admin_index_under_cleanup(admin_client):
    html = admin_client.get("/admin/").content.decode()
    assert f'href="{PAGE}"' in html and "Retention" in html


@pytest.mark.parametrize("who", ["anonymous", "customer"])
def test_the_page_is_for_staff_only(client, django_user_model, who):
    if who == "customer":
        client.force_login(django_user_model.objects.create_user("c", is_superuser=True))
    response = client.get(PAGE)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_the_run_page_shows_rows_per_model_as_a_table_not_json(admin_client):
    expired_job()
    done = purge_expired_jobs()
    html = admin_client.get(run_url(done.run_id)).content.decode()
    assert "<table" in html
    assert re.search(r"<td[^>]*>\s*jobs\.SmsLog\s*</td>\s*<td[^>]*>\s*3\s*</td>", html), html
    assert '"jobs.SmsLog": 3' not in html and "{&quot;jobs" not in html


def test_a_fan_out_runs_page_shows_the_other_runs_of_its_purge(admin_client):
    bulk_expired_jobs(4)
    plan = plan_purge(batch_size=2, max_parallel=2)
    first, *others = run_fan_out(plan, trigger=PurgeRun.Trigger.ADMIN, requested_by="operator")
    assert others
    html = admin_client.get(run_url(first.pk)).content.decode()
    for run in others:
        assert f'href="{run_url(run.pk)}"' in html
        assert f'href="{run_url(first.pk)}"' in admin_client.get(run_url(run.pk)).content.decode()
    assert "operator" in html
    # The list says which runs are one fan-out.
    listing = admin_client.get("/admin/cleanup/purgerun/").content.decode()
    assert "subtask of" in listing.lower() or "fan-out" in listing.lower()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_retention_page_in_a_real_browser_light_and_dark(chromium, live_server, staff):
    history()
    expired_job(by=timedelta(hours=2), with_files=False)
    done = purge_expired_jobs(trigger=PurgeRun.Trigger.BEAT)
    shots = {}

    with chromium() as browser:
        for scheme in ("light", "dark"):
            page = browser.new_page(viewport={"width": 1280, "height": 1400}, color_scheme=scheme)
            log_in(page, f"{live_server.url}{PAGE}")
            page.wait_for_selector("svg[role=img]")
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            ink = page.evaluate(
                "getComputedStyle(document.querySelector('#retention svg[role=img]')).color"
            )
            plots = page.locator("#retention svg[role=img]").count()
            path = ARTIFACTS / f"admin-retention-{scheme}.png"
            page.screenshot(path=str(path), full_page=True)
            shots[scheme] = (background, ink, plots)
            page.close()
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        log_in(page, f"{live_server.url}{run_url(done.run_id)}")
        table_text = page.inner_text("table.rows-per-model")
        page.screenshot(path=str(ARTIFACTS / "admin-purge-run.png"), full_page=True)

    light, dark = shots["light"], shots["dark"]
    assert light[2] >= 4 and dark[2] >= 4
    assert luminance(light[0]) > 0.8 and luminance(dark[0]) < 0.3
    # The plots' ink follows the theme: dark on light, light on dark.
    assert luminance(light[1]) < 0.5 < luminance(dark[1])
    assert "jobs.SmsLog" in table_text
    for scheme in ("light", "dark"):
        assert (ARTIFACTS / f"admin-retention-{scheme}.png").stat().st_size > 10_000


def luminance(css_color: str) -> float:
    r, g, b = (int(x) for x in re.findall(r"\d+", css_color)[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def verdict_of(client) -> str:
    html = client.get(PAGE).content.decode()
    block = html.split('<div id="verdict"', 1)[1].split("</div>", 1)[0]
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", '<div id="verdict"' + block)).strip()


def broken_state():
    """300 jobs 50 hours past their expiry, and no purge since: what the alerts page about."""
    jobs = bulk_expired_jobs(300, by=timedelta(hours=50))
    assert len(jobs) == 300


def test_a_healthy_state_reads_holding_with_the_schedule_and_its_next_run(admin_client):
    ensure_purge_schedule()
    history()
    purge_expired_jobs(trigger=PurgeRun.Trigger.BEAT)
    text = verdict_of(admin_client)
    assert "The 24-hour promise: holding" in text
    next_hour = timezone.localtime() + timedelta(hours=1)
    assert f"enabled, next run {next_hour:%Y-%m-%d %H}:00:00 KST" in text, text


def test_300_jobs_50_hours_overdue_read_broken(admin_client):
    ensure_purge_schedule()
    history()
    broken_state()
    text = verdict_of(admin_client)
    assert "The 24-hour promise: broken" in text
    assert "300 expired job(s) still present, the oldest 50.0 h past its expiry" in text


def test_a_disabled_schedule_is_at_risk_then_broken_as_the_alerts_say(admin_client):
    ensure_purge_schedule()
    PeriodicTask.objects.filter(name="delete-expired-jobs").update(enabled=False)
    history()  # the last success was minutes ago
    text = verdict_of(admin_client)
    assert "The 24-hour promise: at risk" in text
    assert "delete-expired-jobs is disabled" in text and "disabled: no purge runs" in text
    # Three hours without a successful purge: what FmrRetentionNoSuccessfulPurge pages about.
    PurgeRun.objects.update(
        started_at=timezone.now() - timedelta(hours=4),
        finished_at=timezone.now() - timedelta(hours=4),
    )
    text = verdict_of(admin_client)
    assert "The 24-hour promise: broken" in text and "no successful purge for 4.0 h" in text


def test_a_new_deployment_holds_until_its_first_run_is_due(admin_client):
    ensure_purge_schedule()
    assert "The 24-hour promise: holding" in verdict_of(admin_client)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_verdict_in_a_real_browser_healthy_and_broken(chromium, live_server, staff):
    ensure_purge_schedule()
    history()
    shots = {}
    for state in ("healthy", "broken"):
        if state == "broken":
            broken_state()
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            log_in(page, f"{live_server.url}{PAGE}")
            verdict = page.inner_text("#verdict")
            colour = page.evaluate(
                "getComputedStyle(document.querySelector('#verdict')).backgroundColor"
            )
            page.screenshot(path=str(ARTIFACTS / f"retention-{state}.png"), full_page=True)
        shots[state] = (verdict, colour)

    assert "The 24-hour promise: holding" in shots["healthy"][0]
    assert "enabled, next run" in shots["healthy"][0]
    assert shots["healthy"][1] == "rgb(27, 122, 58)"  # green
    assert "The 24-hour promise: broken" in shots["broken"][0]
    assert "300 expired job(s)" in shots["broken"][0]
    assert shots["broken"][1] == "rgb(179, 38, 30)"  # red


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_runs_list_fits_1366_pixels(chromium, live_server, staff):
    history()
    PurgeRun.objects.create(
        cutoff=timezone.now(),
        batch_size=5000,
        status=PurgeRun.Status.FAILED,
        finished_at=timezone.now(),
        rows_deleted={"jobs.Job": 3, "jobs.SmsLog": 9, "jobs.Payment": 3, "jobs.Report": 3},
        error="storage unreachable at https://s3.example: EndpointConnectionError " * 3,
    )
    purge_expired_jobs(dry_run=True)

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        log_in(page, f"{live_server.url}/admin/cleanup/purgerun/")
        overflow = page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth,"
            " document.querySelector('#result_list').scrollWidth,"
            " document.querySelector('.results').clientWidth]"
        )
        heights = page.evaluate(
            "[...document.querySelectorAll('#result_list tbody tr')].map(r => r.offsetHeight)"
        )
        page.screenshot(path=str(ARTIFACTS / "admin-purge-runs-1366.png"))

    # Neither the page nor the table (which the admin scrolls inside its box) is cut off.
    assert overflow[0] <= overflow[1] and overflow[2] <= overflow[3], overflow
    assert max(heights) <= 2.5 * min(heights), heights  # no row made tall by its contents
