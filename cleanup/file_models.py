"""The models whose files the purge deletes: declared in CLEANUP_FILE_MODELS, never discovered;
each with FileFields on the default storage only (pending names carry no storage alias)."""

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files.storage import default_storage
from django.db import models


def file_models() -> list[type[models.Model]]:
    # Resolved on every call (a dict lookup each), so an overridden setting takes effect.
    found = []
    for label in settings.CLEANUP_FILE_MODELS:
        try:
            found.append(apps.get_model(label))
        except (LookupError, ValueError, AttributeError):
            raise ImproperlyConfigured(
                f"CLEANUP_FILE_MODELS names {label!r}, which is not an installed model "
                "(expected 'app_label.ModelName')"
            ) from None
    return found


def file_fields(model) -> list[models.FileField]:
    return [f for f in model._meta.concrete_fields if isinstance(f, models.FileField)]


def names_of(instance) -> list[str]:
    return [n for f in file_fields(type(instance)) if (n := getattr(instance, f.attname).name)]


def upload_rule():
    """The one upload-name rule (as jobs.models.UploadName) the declared fields all validate."""
    found = [v for model in file_models() for f in file_fields(model) for v in f.validators]
    rules = [v for v in found if callable(getattr(v, "problem", None))]
    prefix = getattr(rules[0], "prefix", None) if rules else None
    if not isinstance(prefix, str) or any(rule != rules[0] for rule in rules):
        raise ImproperlyConfigured(
            "every field in CLEANUP_FILE_MODELS must validate names with one jobs.models.UploadName"
        )
    return rules[0]


def validate_file_models():
    """Refuse a declaration the purge could not honour (an empty one would purge no file)."""
    declared = settings.CLEANUP_FILE_MODELS
    if not isinstance(declared, list | tuple) or not declared:
        raise ImproperlyConfigured(
            "CLEANUP_FILE_MODELS must list at least one model with a FileField, such as "
            f"['jobs.JobFile']; got {declared!r}"
        )
    for model in file_models():
        fields, label = file_fields(model), model._meta.label
        if not fields:
            raise ImproperlyConfigured(f"CLEANUP_FILE_MODELS names {label}, which has no FileField")
        if own := [f.name for f in fields if f.storage is not default_storage]:
            why = "uses its own storage; the purge only deletes files from the default storage"
            raise ImproperlyConfigured(f"{label}.{own[0]} {why}")
    upload_rule()
