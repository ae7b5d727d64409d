"""The flow page: trigger URLs, deploy with errors in plain words, versions, diff, rollback,
pause and delete."""

from django.test import override_settings

from flows.compiler import deploy
from flows.models import Flow

from .conftest import greeter_document


@override_settings(FLOWS_PUBLIC_URL="https://bots.example.com")
def test_a_webhook_flow_shows_its_secret_url(alice_client, greeter):
    greeter.document = greeter_document(trigger={"kind": "trigger.webhook", "config": {}})
    greeter.save()
    body = alice_client.get(f"/flows/{greeter.pk}/").content.decode()
    assert f"https://bots.example.com/hooks/{greeter.webhook_token}/" in body


@override_settings(FLOWS_PUBLIC_URL="https://bots.example.com/")
def test_a_github_flow_shows_url_secret_and_events_to_enter_in_github(alice_client, greeter):
    greeter.document = greeter_document(
        trigger={
            "kind": "trigger.github",
            "config": {"events": ["pull_request.opened", "issue_comment.created"]},
        }
    )
    greeter.save()
    body = alice_client.get(f"/flows/{greeter.pk}/").content.decode()
    assert f"https://bots.example.com/hooks/github/{greeter.webhook_token}/" in body
    assert f'<code id="github-secret">{greeter.webhook_secret}</code>' in body
    assert "<code>issue_comment</code>, <code>pull_request</code>" in body
    assert "<code>application/json</code>" in body


def test_deploy_makes_a_version_and_the_flow_active(alice_client, greeter):
    response = alice_client.post(f"/flows/{greeter.pk}/deploy/", headers={"HX-Request": "true"})
    assert "Deployed version 1." in response.content.decode()
    greeter.refresh_from_db()
    assert greeter.status == Flow.Status.ACTIVE
    assert greeter.current_version.number == 1


def test_deploy_errors_name_the_step_and_field_in_plain_words(alice_client, greeter):
    greeter.document["steps"][0]["config"] = {}
    greeter.save()
    response = alice_client.post(f"/flows/{greeter.pk}/deploy/", headers={"HX-Request": "true"})
    body = response.content.decode()
    assert response.status_code == 422
    assert "Not deployed: fix this problem first." in body
    assert "<strong>greet</strong> · template:" in body
    assert not greeter.versions.exists()


def test_versions_diff_and_rollback(alice_client, alice, greeter):
    deploy(greeter, alice)
    greeter.document["steps"][0]["config"]["template"] = "Good morning {{ event.name }}"
    greeter.save()
    deploy(greeter, alice, note="Friendlier")
    page = alice_client.get(f"/flows/{greeter.pk}/versions/").content.decode()
    assert 'Version 2 <span class="badge active">live</span>' in page
    assert "Friendlier" in page
    diff = alice_client.get(f"/flows/{greeter.pk}/versions/2/diff/").content.decode()
    assert '<tr class="replace">' in diff
    assert "&quot;template&quot;: &quot;Hello {{ event.name }}&quot;" in diff
    assert "&quot;template&quot;: &quot;Good morning {{ event.name }}&quot;" in diff
    response = alice_client.post(f"/flows/{greeter.pk}/versions/1/rollback/", follow=True)
    assert "Rolled back: version 3 now runs what version 1 ran." in response.content.decode()
    greeter.refresh_from_db()
    assert greeter.current_version.number == 3
    assert greeter.current_version.document["steps"][0]["config"]["template"] == (
        "Hello {{ event.name }}"
    )
    against_draft = alice_client.get(f"/flows/{greeter.pk}/versions/3/diff/?against=draft")
    assert "No differences." in against_draft.content.decode()


def test_pause_and_resume(alice_client, alice, greeter):
    not_deployed = alice_client.post(f"/flows/{greeter.pk}/pause/", follow=True)
    assert "Paused “Greeter”" in not_deployed.content.decode()
    resumed = alice_client.post(f"/flows/{greeter.pk}/pause/", follow=True)
    assert "is not deployed: deploy it first." in resumed.content.decode()
    deploy(greeter, alice)
    alice_client.post(f"/flows/{greeter.pk}/pause/")
    greeter.refresh_from_db()
    assert greeter.status == Flow.Status.PAUSED
    alice_client.post(f"/flows/{greeter.pk}/pause/")
    greeter.refresh_from_db()
    assert greeter.status == Flow.Status.ACTIVE


def test_delete_asks_first_then_removes_the_flow(alice_client, greeter):
    confirm = alice_client.get(f"/flows/{greeter.pk}/delete/").content.decode()
    assert "This cannot be undone." in confirm
    response = alice_client.post(f"/flows/{greeter.pk}/delete/", follow=True)
    assert "Deleted “Greeter” and its run history." in response.content.decode()
    assert not Flow.objects.exists()


@override_settings(FLOWS_PUBLIC_URL="https://bots.example.com")
def test_a_telegram_flow_shows_what_to_register_with_telegram(alice_client, greeter):
    greeter.document = greeter_document(trigger={"kind": "trigger.telegram", "config": {}})
    greeter.save()
    body = alice_client.get(f"/flows/{greeter.pk}/").content.decode()
    assert (
        f'<code id="telegram-url">https://bots.example.com/hooks/telegram/{greeter.webhook_token}/</code>'
        in body
    )
    assert f'<code id="telegram-secret">{greeter.webhook_secret}</code>' in body
