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


def test_a_fresh_checkout_sets_up_its_embedded_database(tmp_path):
    """`make run` on a clean clone: no var/ folder yet, no DATABASE_URL; migrating creates both
    the folder and the SQLite database, and the demo user and the templates load into it."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    var = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(FLOWS_VAR_DIR=str(var), DJANGO_SETTINGS_MODULE="flowbuilder.settings")
    for command in (["migrate", "--noinput"], ["load_templates"], ["setup_demo"]):
        done = subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
    assert (var / "flowbuilder.sqlite3").is_file()
    assert "username 'demo', password 'flowbuilder-demo'" in done.stdout
