import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_home_page_invites_a_visitor_to_sign_up(client):
    response = client.get("/")
    assert response.status_code == 200
    assert b"Create an account" in response.content


@pytest.mark.django_db
def test_demo_user_can_log_in_and_see_the_dashboard(client, capsys):
    call_command("setup_demo")
    call_command("setup_demo")  # idempotent
    assert "username 'demo', password 'flowbuilder-demo'" in capsys.readouterr().out
    response = client.post(
        "/accounts/login/", {"username": "demo", "password": "flowbuilder-demo"}, follow=True
    )
    assert response.status_code == 200
    assert b"Your flows" in response.content
