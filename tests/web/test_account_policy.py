"""Who may get in: wrong passwords are throttled, sign-up is open, by invitation or closed, and
every page carries a Content-Security-Policy."""

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from .conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def dora(db):
    return get_user_model().objects.create_user("dora", "dora@example.com", PASSWORD)


def test_wrong_passwords_lock_the_login_out_with_a_clear_message(client, dora, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(2):
        wrong = client.post("/accounts/login/", {"username": "dora", "password": "nope"})
        assert wrong.status_code == 200
        assert "Please enter a correct username and password" in wrong.content.decode()
    locked = client.post("/accounts/login/", {"username": "dora", "password": "nope"})
    assert locked.status_code == 429
    assert "Too many wrong passwords" in locked.content.decode()
    # Even the right password is refused until the cool-off ends.
    right = client.post("/accounts/login/", {"username": "dora", "password": PASSWORD})
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session


def test_a_right_password_before_the_limit_logs_in_and_resets_the_count(client, dora, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client.post("/accounts/login/", {"username": "dora", "password": "nope"})
    client.post("/accounts/login/", {"username": "dora", "password": "nope"})
    ok = client.post("/accounts/login/", {"username": "dora", "password": PASSWORD})
    assert ok.status_code == 302
    client.post("/accounts/logout/")
    client.post("/accounts/login/", {"username": "dora", "password": "nope"})
    again = client.post("/accounts/login/", {"username": "dora", "password": PASSWORD})
    assert again.status_code == 302


def sign_up(client, username, **extra):
    return client.post(
        "/accounts/signup/",
        {
            "username": username,
            "email": f"{username}@example.com",
            "password1": PASSWORD,
            "password2": PASSWORD,
            **extra,
        },
    )


def test_closed_sign_up_says_who_makes_accounts_and_creates_none(client, settings):
    settings.FLOWS_SIGNUP = "closed"
    page = client.get("/accounts/signup/")
    assert page.status_code == 403
    assert "Accounts on this server are made by its operator" in page.content.decode()
    assert sign_up(client, "eve").status_code == 403
    assert not get_user_model().objects.filter(username="eve").exists()
    assert "Create an account" not in client.get("/accounts/login/").content.decode()


def test_invite_only_sign_up_takes_a_link_from_the_operator(client, settings, capsys):
    settings.FLOWS_SIGNUP = "invite"
    settings.FLOWS_PUBLIC_URL = "https://flows.example.com"
    assert sign_up(client, "eve").status_code == 403
    assert sign_up(client, "eve", invite="forged").status_code == 403

    call_command("invite_user", "finn@example.com")
    link = capsys.readouterr().out.strip()
    assert link.startswith("https://flows.example.com/accounts/signup/?invite=")
    path = link.removeprefix("https://flows.example.com")
    form = client.get(path)
    assert form.status_code == 200
    assert 'value="finn@example.com"' in form.content.decode()
    token = path.split("invite=", 1)[1]
    assert sign_up(client, "finn", invite=token).status_code == 302
    assert get_user_model().objects.filter(username="finn").exists()


def test_open_sign_up_is_offered_on_the_login_page(client, settings):
    settings.FLOWS_SIGNUP = "open"
    assert "Create an account" in client.get("/accounts/login/").content.decode()
    assert sign_up(client, "gus").status_code == 302


def test_pages_carry_a_content_security_policy(client, settings):
    page = client.get("/accounts/login/")
    policy = page["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy.split(";")[1]
    assert "frame-ancestors 'none'" in policy
