"""Connections: add with the service's form, test against a fake service, edit, delete; secrets
only ever shown as their last four characters."""

import pytest
from django.test import override_settings
from django.utils.html import escape

from flows.models import Flow
from integrations.models import Connection
from integrations.services import github_app
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


def test_a_github_app_connection_keeps_its_private_key_encrypted_and_signs_in(
    alice_client, github, app_key
):
    github_app.forget_tokens()
    github.add_app(4242, app_key[1], slug="review-app", installations=(31,))
    form = alice_client.get("/connections/new/github/").content.decode()
    assert "GitHub App ID" in form and 'name="private_key"' in form
    response = alice_client.post(
        "/connections/new/github/",
        {"name": "Review App", "app_id": "4242", "private_key": app_key[0], "token": ""},
    )
    assert response["Location"] == "/connections/"
    connection = Connection.objects.get()
    assert connection.config == {"app_id": "4242"}
    assert connection.get_secrets() == {"private_key": app_key[0].strip()}
    assert "PRIVATE KEY" not in connection.secrets_encrypted
    edit = alice_client.get(f"/connections/{connection.pk}/edit/").content.decode()
    assert "BEGIN RSA PRIVATE KEY" not in edit

    tested = alice_client.post(f"/connections/{connection.pk}/test/", follow=True)
    assert (
        "“Review App” works: Signed in to GitHub as the App review-app. Each run uses the "
        "installation its event names; set an installation ID for runs that do not start from "
        "a GitHub event."
    ) in tested.content.decode()

    alice_client.post(
        f"/connections/{connection.pk}/edit/",
        {"name": "Review App", "app_id": "4242", "installation_id": "31"},
    )
    connection.refresh_from_db()
    assert connection.config == {"app_id": "4242", "installation_id": "31"}
    tested = alice_client.post(f"/connections/{connection.pk}/test/", follow=True)
    assert "Signed in to GitHub as the App review-app, installation 31." in (
        tested.content.decode()
    )
    assert [r.path for r in github.minted] == ["/app/installations/31/access_tokens"]
    github_app.forget_tokens()


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        (
            {"app_id": "4242", "private_key": "not a key"},
            "The private key is not a PEM private key: paste the whole .pem file GitHub gave "
            "you, from -----BEGIN RSA PRIVATE KEY----- to its END line.",
        ),
        ({"app_id": "4242"}, "A GitHub App needs its private key."),
        ({"app_id": "4242", "token": TOKEN}, "Fill in either a token or a GitHub App"),
        ({"app_id": "my app"}, "The App ID is a number, e.g. 123456."),
    ],
)
def test_a_github_app_connection_that_cannot_sign_in_is_refused_in_words(
    alice_client, fields, error
):
    response = alice_client.post("/connections/new/github/", {"name": "App", **fields})
    assert response.status_code == 400
    assert escape(error) in response.content.decode()
    assert not Connection.objects.exists()
