"""The gallery: templates load from flow_templates/ at set-up, and "use template" copies one."""

import json
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from flows.models import Flow
from gallery.models import Template
from gallery.registry import (
    TemplateError,
    TemplateNotFound,
    list_templates,
    load_templates,
    use_template,
)
from integrations.models import Connection

TEMPLATES_DIR = Path(settings.BASE_DIR) / "flow_templates"
SLUGS = [
    "code-review-bot",
    "pr-summary-labeler",
    "issue-triage",
    "telegram-chat-bot",
    "daily-digest",
    "repository-assistant",
]

pytestmark = pytest.mark.django_db


def test_set_up_leaves_every_template_in_the_gallery_flagship_first():
    specs = list_templates()
    assert [s.slug for s in specs] == SLUGS
    assert [s.name for s in specs] == [
        "Code Review Bot",
        "PR Summary and Labeler",
        "Issue Triage",
        "Telegram Chat Bot",
        "Daily Digest",
        "Repository Assistant",
    ]
    assert {s.slug: s.services for s in specs} == {
        "code-review-bot": ["github", "llm"],
        "pr-summary-labeler": ["github", "llm"],
        "issue-triage": ["github", "llm"],
        "telegram-chat-bot": ["llm", "telegram"],
        "daily-digest": ["http", "llm", "slack"],
        "repository-assistant": ["github", "llm"],
    }
    assert {s.slug: s.trigger for s in specs} == {
        "code-review-bot": "trigger.github",
        "pr-summary-labeler": "trigger.github",
        "issue-triage": "trigger.github",
        "telegram-chat-bot": "trigger.telegram",
        "daily-digest": "trigger.schedule",
        "repository-assistant": "trigger.github",
    }


def test_every_setting_of_every_template_is_described():
    for spec in list_templates():
        assert spec.settings, spec.slug
        for setting in spec.settings:
            assert len(setting.description) > 20, (spec.slug, setting.name)


def test_code_review_bot_offers_the_settings_its_users_need():
    spec = next(s for s in list_templates() if s.slug == "code-review-bot")
    settings_by_name = {s.name: s for s in spec.settings}
    assert list(settings_by_name) == [
        "github_repo",
        "trigger_phrase",
        "review_drafts",
        "bot_login",
        "model",
        "context_size",
        "max_files",
        "max_issues",
        "ignore_globs",
        "language",
        "tone",
        "files_at_once",
        "investigate",
        "investigate_reads",
    ]
    assert settings_by_name["github_repo"].required
    assert settings_by_name["investigate"].default is False
    assert settings_by_name["files_at_once"].default == 4
    assert settings_by_name["trigger_phrase"].default == "/review"
    assert "package-lock.json" in settings_by_name["ignore_globs"].default


def test_step_sources_are_inlined_from_their_python_files():
    spec = next(s for s in list_templates() if s.slug == "code-review-bot")
    steps = {s["id"]: s for s in spec.document["steps"]}
    folder = TEMPLATES_DIR / "code-review-bot"
    assert steps["check"]["config"] == {"source": (folder / "check.py").read_text()}
    assert steps["review"]["config"] == {"source": (folder / "review.py").read_text()}
    assert steps["review"]["limits"] == {"timeout_s": 300}


def test_load_templates_is_idempotent(capsys):
    call_command("load_templates")
    call_command("load_templates")
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "6 templates in the gallery: 0 new, 0 updated, 6 unchanged, 0 removed",
        "6 templates in the gallery: 0 new, 0 updated, 6 unchanged, 0 removed",
    ]
    assert Template.objects.count() == 6


def test_load_templates_brings_the_gallery_in_line_with_the_folder(tmp_path, settings):
    for slug in ("issue-triage", "daily-digest"):
        shutil.copytree(TEMPLATES_DIR / slug, tmp_path / slug)
    flow_json = tmp_path / "issue-triage" / "flow.json"
    document = json.loads(flow_json.read_text())
    document["description"] = "Triage, told differently."
    flow_json.write_text(json.dumps(document))
    settings.FLOWS_TEMPLATES_DIR = tmp_path

    report = load_templates()

    assert (report.created, report.updated, report.unchanged) == (
        [],
        ["issue-triage"],
        ["daily-digest"],
    )
    assert report.removed == [
        "code-review-bot",
        "pr-summary-labeler",
        "repository-assistant",
        "telegram-chat-bot",
    ]
    assert [s.slug for s in list_templates()] == ["issue-triage", "daily-digest"]
    assert list_templates()[0].description == "Triage, told differently."


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            lambda folder: (folder / "triage.py").unlink(),
            "template 'issue-triage': step 'triage' names triage.py",
        ),
        (
            lambda folder: (folder / "triage.py").write_text("def main(event, ctx)\n    pass\n"),
            "template 'issue-triage': triage.py line 1: expected ':'",
        ),
        (
            lambda folder: (folder / "flow.json").write_text("{"),
            "template 'issue-triage': flow.json is not valid JSON: Expecting property name "
            "enclosed in double quotes: line 1 column 2 (char 1)",
        ),
    ],
)
def test_a_broken_template_stops_loading_with_a_clear_message(tmp_path, settings, damage, message):
    shutil.copytree(TEMPLATES_DIR / "issue-triage", tmp_path / "issue-triage")
    damage(tmp_path / "issue-triage")
    settings.FLOWS_TEMPLATES_DIR = tmp_path

    with pytest.raises(CommandError) as error:
        call_command("load_templates")

    assert str(error.value) == message
    assert Template.objects.count() == 6


def test_use_template_makes_an_independent_draft_in_the_users_flows(django_user_model):
    user = django_user_model.objects.create_user("ada")
    spec = next(s for s in list_templates() if s.slug == "issue-triage")

    flow = use_template("issue-triage", user)

    assert (flow.owner, flow.name, flow.slug, flow.template, flow.status) == (
        user,
        "Issue Triage",
        "issue-triage",
        "issue-triage",
        "draft",
    )
    assert flow.description == spec.description
    assert flow.document == spec.document
    flow.document["settings"]["github_repo"]["value"] = "ada/project"
    flow.document["steps"][0]["config"]["source"] = "def main(event, ctx):\n    return 1\n"
    flow.save()
    assert next(s for s in list_templates() if s.slug == "issue-triage").document == spec.document


def test_using_a_template_twice_gives_two_flows_with_distinct_slugs(django_user_model):
    user = django_user_model.objects.create_user("ada")
    other = django_user_model.objects.create_user("bob")
    first = use_template("code-review-bot", user)
    second = use_template("code-review-bot", user)
    theirs = use_template("code-review-bot", other)
    assert (first.slug, second.slug, theirs.slug) == (
        "code-review-bot",
        "code-review-bot-2",
        "code-review-bot",
    )
    assert Flow.objects.owned_by(user).count() == 2


def test_use_template_binds_a_service_the_user_connected_exactly_once(django_user_model):
    user = django_user_model.objects.create_user("ada")
    github = Connection.objects.create(owner=user, service="github", name="My GitHub")
    Connection.objects.create(owner=user, service="llm", name="Local model")
    Connection.objects.create(owner=user, service="llm", name="Hosted model")

    flow = use_template("code-review-bot", user)

    assert flow.document["connections"] == {
        "github": {"service": "github", "connection": github.pk},
        "llm": {"service": "llm", "connection": None},
    }


def test_use_template_refuses_an_unknown_template(django_user_model):
    user = django_user_model.objects.create_user("ada")
    with pytest.raises(TemplateNotFound, match="No template named 'nope' in the gallery."):
        use_template("nope", user)
    assert not Flow.objects.exists()


def test_template_error_is_raised_by_the_registry_too(tmp_path, settings):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "flow.json").write_text("{}")
    settings.FLOWS_TEMPLATES_DIR = tmp_path
    with pytest.raises(TemplateError, match="template 'empty': flow.json has no name"):
        load_templates()
