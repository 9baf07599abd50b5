"""The purge status for dashboards and monitors: JSON, and the Prometheus text format."""

import hmac
from functools import wraps

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

# The classic text format (version 0.0.4), which every Prometheus reads.
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4 as CONTENT_TYPE

from fmr.parsing import clean_secret, parse_minutes

from .metrics import render_down, render_metrics
from .services import purge_status, run_totals


def monitor_view(view):
    """GET, never cached, staff or bearer token; a database that does not answer is a 503."""

    @never_cache
    @require_GET
    @wraps(view)
    def answer(request):
        # Both sides stripped: a secret file's token, or a monitor's header, may end in a newline.
        token = clean_secret(settings.CLEANUP_STATUS_TOKEN) or ""
        scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
        matches = hmac.compare_digest(offered.strip().encode(), token.encode())
        bearer = bool(token) and scheme.lower() == "bearer" and matches
        try:
            if bearer or request.user.is_active and request.user.is_staff:
                return view(request)
        except DatabaseError as exc:
            reason = f"database unreachable: {type(exc).__name__}"
            if view.__name__ == "metrics":
                return HttpResponse(render_down(reason), status=503, content_type=CONTENT_TYPE)
            return HttpResponse(f"{reason}\n", status=503, content_type="text/plain")
        if request.user.is_authenticated:
            return JsonResponse({"error": "staff only"}, status=403)
        challenge = {"WWW-Authenticate": 'Bearer realm="cleanup"'}
        return JsonResponse({"error": "authentication required"}, status=401, headers=challenge)

    return answer


@monitor_view
def status(request):
    """`purge_status --json`; with `?max_overdue=MINUTES`, a 503 when the promise is at risk."""
    facts = purge_status()
    data = facts.as_dict()
    if "max_overdue" in request.GET:
        try:
            data["problems"] = facts.problems(max_overdue=parse_minutes(request.GET["max_overdue"]))
        except ValueError as exc:
            return JsonResponse({"error": str(exc)}, status=400)
    return JsonResponse(data, status=503 if data.get("problems") else 200)


@monitor_view
def metrics(request):
    body = render_metrics(status=purge_status(), totals=run_totals())
    return HttpResponse(body, content_type=CONTENT_TYPE)
