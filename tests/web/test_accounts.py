"""Sign up, log in and out, and reset a forgotten password (the email goes to the console in
embedded mode; the tests read Django's test outbox)."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.core import mail

import flowbuilder.settings as project_settings

from .conftest import PASSWORD


@pytest.mark.django_db
def test_a_visitor_signs_up_and_lands_on_an_empty_dashboard(client):
    response = client.post(
        "/accounts/signup/",
        {
            "username": "carol",
            "email": "carol@example.com",
            "password1": PASSWORD,
            "password2": PASSWORD,
        },
        follow=True,
    )
    assert response.redirect_chain[-1][0] == "/dashboard/"
    body = response.content.decode()
    assert "You have no flows yet" in body
    assert "Log out (carol)" in body


@pytest.mark.django_db
def test_sign_up_explains_what_is_wrong_next_to_the_field(client):
    response = client.post(
        "/accounts/signup/",
        {"username": "carol", "email": "not-an-email", "password1": PASSWORD, "password2": "x"},
    )
    body = response.content.decode()
    assert "Enter a valid email address." in body
    assert "The two password fields didn’t match." in body
    assert not get_user_model().objects.filter(username="carol").exists()


def test_log_in_and_log_out(client, alice):
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": "wrong"}, follow=True
    )
    assert "Please enter a correct username and password." in response.content.decode()
    response = client.post(
        "/accounts/login/", {"username": "alice", "password": PASSWORD}, follow=True
    )
    assert "Your flows" in response.content.decode()
    response = client.post("/accounts/logout/", follow=True)
    assert response.redirect_chain[-1][0] == "/accounts/login/"
    assert client.get("/dashboard/").status_code == 302


def test_password_reset_by_email_link(client, alice):
    assert project_settings.EMAIL_BACKEND == "django.core.mail.backends.console.EmailBackend"
    response = client.post("/accounts/password-reset/", {"email": "alice@example.com"}, follow=True)
    assert "Check your email" in response.content.decode()
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "Reset your Flowbuilder password"
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", mail.outbox[0].body).group(1)
    form_page = client.get(link, follow=True)
    assert "Choose a new password" in form_page.content.decode()
    done = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "a-brand-new-secret-42", "new_password2": "a-brand-new-secret-42"},
        follow=True,
    )
    assert "Your password is changed" in done.content.decode()
    assert client.login(username="alice", password="a-brand-new-secret-42")
    reused = client.get(link, follow=True)
    assert "This link no longer works" in reused.content.decode()
