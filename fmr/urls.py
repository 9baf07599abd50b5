from django.contrib import admin
from django.urls import path, re_path

from cleanup import views as cleanup_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("cleanup/status/", cleanup_views.status, name="cleanup-status"),
    # Prometheus scrapes /metrics-style paths without a trailing slash; both answer.
    re_path(r"^cleanup/metrics/?$", cleanup_views.metrics, name="cleanup-metrics"),
]
