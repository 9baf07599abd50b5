"""Admin test helpers: a staff user, and submitting an admin form as a browser would."""

from html.parser import HTMLParser
from importlib import import_module

from django_celery_beat.models import PeriodicTask


class _FormFields(HTMLParser):
    def __init__(self, form_id):
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.data: dict[str, list[str]] = {}
        self._select = None
        self._textarea = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and attrs.get("id") == self.form_id:
            self.inside = True
        if not self.inside:
            return
        name = attrs.get("name")
        if tag == "input" and name and attrs.get("type") not in {"submit", "button", "file"}:
            checkable = attrs.get("type") in {"checkbox", "radio"}
            if checkable and "checked" not in attrs:
                return
            self.data.setdefault(name, []).append(attrs.get("value", "on" if checkable else ""))
        elif tag == "select" and name:
            self._select = name
            self._multiple = "multiple" in attrs
            self._first_option = None
            self.data.setdefault(name, [])
        elif tag == "option" and self._select:
            if self._first_option is None:
                self._first_option = attrs.get("value", "")
            if "selected" in attrs:
                self.data[self._select].append(attrs.get("value", ""))
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = [""]

    def handle_data(self, data):
        if self._textarea:
            if not self.data[self._textarea][0]:
                # As in browsers: a newline right after <textarea> is not part of the value.
                data = data.removeprefix("\n")
            self.data[self._textarea][0] += data

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select" and self._select:
            # A single select with nothing marked selected submits its first option.
            values = self.data[self._select]
            if not values and not self._multiple and self._first_option is not None:
                values.append(self._first_option)
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def form_data(html: str, form_id: str) -> dict[str, list[str]]:
    """The values a browser would post for the form with this id, unchanged."""
    parser = _FormFields(form_id)
    parser.feed(html)
    return {name: values for name, values in parser.data.items() if values}


def ensure_purge_schedule():
    """The delete-expired-jobs row as `migrate` creates it (transactional tests flush it)."""
    from django.apps import apps

    migration = import_module("cleanup.migrations.0002_delete_expired_jobs_schedule")
    migration.create_schedule(apps, None)


def ensure_reconcile_schedule():
    """The reconcile-storage row as `migrate` creates it."""
    from django.apps import apps

    migration = import_module("cleanup.migrations.0003_reconcile_storage_schedule")
    migration.create_schedule(apps, None)


def save_schedule(staff_client, **changes):
    """Post the delete-expired-jobs form as shown, with `changes` (None: leave unticked)."""
    task = PeriodicTask.objects.get(name="delete-expired-jobs")
    url = f"/admin/django_celery_beat/periodictask/{task.pk}/change/"
    data = form_data(staff_client.get(url).content.decode(), "periodictask_form")
    data.update(changes)
    for field in [name for name, value in changes.items() if value is None]:
        data.pop(field)
    response = staff_client.post(url, data)
    errors = response.context["adminform"].form.errors if response.status_code == 200 else None
    assert response.status_code == 302, errors
    return PeriodicTask.objects.get(name="delete-expired-jobs")
