"""Hostile input to the integrations' endpoints and forms: webhook bodies nested too deep get a
clear 400 and start nothing; a secret typed into a connection form never comes back in the page
that shows the form again after a mistake."""

from flows.models import Flow, Run
from integrations.models import Connection
from tests.fakes.github import sign

DEEP = b"[" * 100_000


def test_a_github_delivery_nested_too_deep_is_refused(client, user):
    flow = Flow.objects.create(owner=user, name="Bot", slug="bot", document={})
    response = client.post(
        f"/hooks/github/{flow.webhook_token}/",
        DEEP,
        "application/json",
        HTTP_X_GITHUB_EVENT="pull_request",
        HTTP_X_HUB_SIGNATURE_256=sign(flow.webhook_secret, DEEP),
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "The body is not a JSON object: it is nested more than 100 levels deep."
    }
    assert not Run.objects.exists()


def test_a_telegram_update_nested_too_deep_is_refused(client, user):
    flow = Flow.objects.create(owner=user, name="Bot", slug="bot", document={})
    response = client.post(
        f"/hooks/telegram/{flow.webhook_token}/",
        DEEP,
        "application/json",
        HTTP_X_TELEGRAM_BOT_API_SECRET_TOKEN=flow.webhook_secret,
    )
    assert response.status_code == 400
    assert response.json() == {
        "error": "The body is not a JSON object: it is nested more than 100 levels deep."
    }
    assert not Run.objects.exists()


def test_secret_headers_are_not_shown_again_after_a_form_error(client, user):
    Connection.objects.create(owner=user, service="http", name="Taken")
    client.force_login(user)
    response = client.post(
        "/connections/new/http/",
        {"name": "Taken", "headers": "Authorization: Bearer s3cret-header-value-1234"},
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "You already have a connection with this name." in body
    assert "s3cret-header-value-1234" not in body
    assert Connection.objects.count() == 1
