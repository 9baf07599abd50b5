"""The purge status for dashboards and monitors: JSON, and the Prometheus text format."""

import hmac
from functools import wraps

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from fmr.parsing import clean_secret

from .metrics import CONTENT_TYPE, render_down, render_metrics
from .services import overdue_limit, purge_status, run_totals


def monitor_view(view):
    """GET, never cached, staff or bearer token; a database that does not answer is a 503."""

    @never_cache
    @require_GET
    @wraps(view)
    def answer(request):
        try:
            return view(request) if _allowed(request) else _refused(request)
        except DatabaseError as exc:
            reason = f"database unreachable: {type(exc).__name__}"
            if view.__name__ == "metrics":
                return HttpResponse(render_down(reason), status=503, content_type=CONTENT_TYPE)
            return HttpResponse(f"{reason}\n", status=503, content_type="text/plain")

    return answer


@monitor_view
def status(request):
    """`purge_status --json`; with `?max_overdue=MINUTES`, a 503 when the promise is at risk."""
    max_overdue = request.GET.get("max_overdue")
    if max_overdue is not None:
        try:
            max_overdue = overdue_limit(max_overdue)
        except ValueError as exc:
            return JsonResponse({"error": str(exc)}, status=400)
    facts = purge_status()
    data = facts.as_dict()
    if max_overdue is None:
        return JsonResponse(data)
    data["problems"] = facts.problems(max_overdue=max_overdue)
    return JsonResponse(data, status=503 if data["problems"] else 200)


@monitor_view
def metrics(request):
    """Gauges of the status and counters of the run history, for Prometheus."""
    body = render_metrics(status=purge_status(), totals=run_totals())
    return HttpResponse(body, content_type=CONTENT_TYPE)


def _refused(request):
    if request.user.is_authenticated:
        return JsonResponse({"error": "staff only"}, status=403)
    response = JsonResponse({"error": "authentication required"}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="cleanup"'
    return response


def _allowed(request) -> bool:
    if request.user.is_active and request.user.is_staff:
        return True
    # Both sides stripped: a token read from a secret file ends with a newline, and a monitor's
    # header may carry one too.
    token = clean_secret(settings.CLEANUP_STATUS_TOKEN)
    scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
    offered = offered.strip()
    if not token or scheme.lower() != "bearer" or not offered:
        return False
    return hmac.compare_digest(offered.encode(), token.encode())
