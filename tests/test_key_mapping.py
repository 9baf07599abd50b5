"""The purge computes S3 keys itself (the storage's location, '/', the name), with no private
django-storages API: they must be the keys django-storages writes uploads to. Checked by
behaviour on a real S3 server, so a django-storages upgrade that maps names otherwise fails here
(this replaces the source-hash pins of its private `_normalize_name` and `clean_name`)."""

import uuid

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from cleanup.services.files import open_storage

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("location", ["", "tenant/a", "tenant/b/"])
def test_the_keys_the_purge_deletes_are_the_keys_uploads_were_written_to(
    s3_bucket, settings, location
):
    default = settings.STORAGES["default"]
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {**default, "OPTIONS": {**default["OPTIONS"], "location": location}},
    }
    names = [f"jobs/{uuid.uuid4()}/photo-1.png", f"jobs/{uuid.uuid4()}/a_b-c.d.PNG"]
    for name in names:
        assert default_storage.save(name, ContentFile(b"png")) == name
    assert len(s3_bucket.keys()) == 2

    session = open_storage()
    assert {found.name for found in session.list_objects("jobs/")} == set(names)
    outcome = session.delete_names(names)

    assert sorted(outcome.deleted) == sorted(names)
    assert s3_bucket.keys() == set()  # the very objects the uploads wrote
