from django.contrib import admin
from django.urls import path

from cleanup import views as cleanup_views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("cleanup/status/", cleanup_views.status, name="cleanup-status"),
    # Prometheus scrapes /metrics-style paths without a trailing slash; both answer.
    path("cleanup/metrics", cleanup_views.metrics, name="cleanup-metrics"),
    path("cleanup/metrics/", cleanup_views.metrics),
]
