"""Connections: add with the service's form, test against a fake service, edit, delete; secrets
only ever shown as their last four characters."""

import pytest
from django.test import override_settings

from flows.models import Flow
from integrations.models import Connection
from tests.fakes.github import FakeGitHub

TOKEN = "ghp_fakeToken1234567890abcdWXYZ"


@pytest.fixture
def github():
    with (
        FakeGitHub(token=TOKEN) as fake,
        override_settings(FLOWS_GITHUB_API_URL=fake.url, FLOWS_ALLOW_PRIVATE_HOSTS=True),
    ):
        yield fake


def add_github(client, token: str = TOKEN, name: str = "Work GitHub", **extra):
    return client.post("/connections/new/github/", {"name": name, "token": token, **extra})


def test_connections_page_offers_a_form_per_service(alice_client):
    body = alice_client.get("/connections/").content.decode()
    for service in ("github", "llm", "slack", "discord", "telegram", "http"):
        assert f'href="/connections/new/{service}/"' in body
    assert "You have no connections yet." in body
    form = alice_client.get("/connections/new/llm/").content.decode()
    assert (
        '<label for="id_base_url">Base URL <span class="required">(required)</span></label>' in form
    )
    assert 'type="password" name="api_key"' in form
    assert alice_client.get("/connections/new/fax/").status_code == 404


def test_a_secret_is_shown_only_as_its_last_four_characters(alice_client, alice):
    response = add_github(alice_client)
    assert response["Location"] == "/connections/"
    body = alice_client.get("/connections/").content.decode()
    assert "••••WXYZ" in body
    assert TOKEN not in body
    edit = alice_client.get(f"/connections/{Connection.objects.get().pk}/edit/").content.decode()
    assert TOKEN not in edit
    assert "Saved; it ends in …WXYZ. Leave empty to keep it." in edit
    assert Connection.objects.get().get_secrets() == {"token": TOKEN}


def test_a_missing_token_is_explained_next_to_the_field(alice_client):
    response = add_github(alice_client, token="")
    assert response.status_code == 400
    assert "Fill in a token, or the App ID and private key of an App." in response.content.decode()
    assert not Connection.objects.exists()


def test_after_creating_a_connection_the_user_goes_back_where_they_came_from(alice_client):
    response = add_github(alice_client, next="/flows/1/setup/")
    assert response["Location"] == "/flows/1/setup/"
    elsewhere = add_github(alice_client, name="Other", next="https://evil.example/")
    assert elsewhere["Location"] == "/connections/"


def test_testing_a_connection_says_the_result_in_plain_words(alice_client, github):
    add_github(alice_client)
    connection = Connection.objects.get()
    row = alice_client.post(
        f"/connections/{connection.pk}/test/", headers={"HX-Request": "true"}
    ).content.decode()
    assert row.startswith(f'<tr id="connection-{connection.pk}">')
    assert "Works: Connected to GitHub as flowbot." in row

    add_github(alice_client, token="ghp_wrongToken000000000000000000", name="Stale")
    stale = Connection.objects.get(name="Stale")
    response = alice_client.post(f"/connections/{stale.pk}/test/", follow=True)
    body = response.content.decode()
    assert "“Stale” does not work:" in body
    stale.refresh_from_db()
    assert stale.last_test_ok is False
    assert "ghp_wrongToken" not in body


def test_deleting_a_connection_names_the_flows_that_use_it(alice_client, alice):
    add_github(alice_client)
    connection = Connection.objects.get()
    Flow.objects.create(
        owner=alice,
        name="Reviewer",
        slug="reviewer",
        document={"connections": {"github": {"service": "github", "connection": connection.pk}}},
    )
    confirm = alice_client.get(f"/connections/{connection.pk}/delete/").content.decode()
    assert "These flows use it" in confirm
    assert "Reviewer" in confirm
    response = alice_client.post(f"/connections/{connection.pk}/delete/", follow=True)
    assert "Deleted the connection “Work GitHub” and its credentials." in response.content.decode()
    assert not Connection.objects.exists()
