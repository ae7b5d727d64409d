"""Bad files given to `manage.py flows` get a clear error and create nothing."""

import json

import pytest
from django.core.management import CommandError, call_command

from flows.models import Flow

from .conftest import document

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[" * 100_000, "is not valid JSON: it is nested more than 100 levels deep"),
        (b'{"name": "\xff\xfe"}', "is not UTF-8 text."),
        (b'{"name": ', "is not valid JSON: Expecting value: line 1 column 10 (char 9)"),
    ],
)
def test_import_of_an_unreadable_file_says_why_and_creates_nothing(
    user, tmp_path, content, message
):
    bad = tmp_path / "flow.json"
    bad.write_bytes(content)
    with pytest.raises(CommandError) as error:
        call_command("flows", "import", str(bad), "--owner", user.username)
    assert str(error.value) == f"{bad} {message}"
    assert not Flow.objects.exists()


def test_import_shortens_a_name_longer_than_a_flow_name_may_be(user, tmp_path):
    doc = document()
    doc["name"] = "n" * 500
    path = tmp_path / "flow.json"
    path.write_text(json.dumps(doc))
    call_command("flows", "import", str(path), "--owner", user.username)
    assert Flow.objects.get().name == "n" * 200
