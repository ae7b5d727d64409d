"""The template gallery, "Use template" and the set-up walk-through: connect, fill in, deploy."""

from flows.models import Flow
from integrations.models import Connection


def connect(user, service: str, name: str, config: dict, secrets: dict) -> Connection:
    connection = Connection(owner=user, service=service, name=name, config=config)
    connection.set_secrets(secrets)
    connection.save()
    return connection


def test_gallery_cards_show_what_each_template_needs(alice_client):
    body = alice_client.get("/templates/").content.decode()
    assert '<h2 class="h3" id="tpl-code-review-bot">Code Review Bot</h2>' in body
    assert '<span class="chip">GitHub</span><span class="chip">LLM</span>' in body
    assert "github_repo*</span>" in body
    assert body.index("Code Review Bot") < body.index("Issue")


def test_use_template_copies_it_and_walks_through_the_setup(alice_client, alice):
    response = alice_client.post("/templates/code-review-bot/use/")
    flow = Flow.objects.get(owner=alice)
    assert response["Location"] == f"/flows/{flow.pk}/setup/"
    assert flow.template == "code-review-bot"
    assert flow.document["connections"]["github"]["connection"] is None
    setup = alice_client.get(response["Location"]).content.decode()
    assert "1</span> Connect the services" in setup
    assert "Choose a GitHub connection" in setup
    assert f'href="/connections/new/github/?next=/flows/{flow.pk}/setup/"' in setup
    assert "2</span> Fill in the settings" in setup
    assert 'name="setting__github_repo"' in setup
    assert "3</span> Deploy" in setup


def test_setup_deploys_once_connections_and_settings_are_filled(alice_client, alice):
    alice_client.post("/templates/code-review-bot/use/")
    flow = Flow.objects.get(owner=alice)
    missing = alice_client.post(f"/flows/{flow.pk}/setup/", {"deploy": "1"})
    assert missing.status_code == 400
    assert "This field is required." in missing.content.decode()

    github = connect(alice, "github", "My GitHub", {}, {"token": "ghp_secret1234"})
    llm = connect(
        alice, "llm", "Local model", {"base_url": "http://127.0.0.1:1/v1", "model": "m"}, {}
    )
    form = {
        "connection__github": github.pk,
        "connection__llm": llm.pk,
        "setting__github_repo": "octo/hello",
        "setting__trigger_phrase": "/review",
        "setting__context_size": "4096",
        "setting__max_files": "50",
        "setting__max_issues": "3",
        "setting__ignore_globs": "*.lock\nvendor/*",
        "setting__language": "English",
        "setting__tone": "kind",
        "deploy": "1",
    }
    response = alice_client.post(f"/flows/{flow.pk}/setup/", form, follow=True)
    assert "Deployed version 1. Your flow is live." in response.content.decode()
    flow.refresh_from_db()
    settings = flow.document["settings"]
    assert settings["github_repo"]["value"] == "octo/hello"
    assert settings["context_size"]["value"] == 4096
    assert settings["review_drafts"]["value"] is False
    assert settings["ignore_globs"]["value"] == ["*.lock", "vendor/*"]
    assert flow.document["connections"]["github"]["connection"] == github.pk
    assert flow.status == Flow.Status.ACTIVE


def test_another_users_connection_cannot_be_chosen(alice_client, alice, bob):
    alice_client.post("/templates/code-review-bot/use/")
    flow = Flow.objects.get(owner=alice)
    bobs = connect(bob, "github", "Bob GitHub", {}, {"token": "ghp_bob"})
    response = alice_client.post(f"/flows/{flow.pk}/setup/", {"connection__github": bobs.pk})
    assert "Select a valid choice." in response.content.decode()
    flow.refresh_from_db()
    assert flow.document["connections"]["github"]["connection"] is None


def test_an_unknown_template_is_not_found(alice_client):
    assert alice_client.post("/templates/no-such-thing/use/").status_code == 404


def test_the_setup_page_says_what_to_enter_for_a_repository_webhook_or_a_github_app(
    alice_client, alice
):
    alice_client.post("/templates/code-review-bot/use/")
    flow = Flow.objects.get(owner=alice)
    setup = alice_client.get(f"/flows/{flow.pk}/setup/").content.decode()
    assert "4</span> Point GitHub at the flow" in setup
    hook = f"http://testserver/hooks/github/{flow.webhook_token}/"
    assert f'<dt>Webhook URL</dt><dd><code class="copy" id="github-app-url">{hook}</code>' in setup
    assert f"<dt>Webhook secret</dt><dd><code>{flow.webhook_secret}</code></dd>" in setup
    assert (
        "<dt>Repository permissions</dt><dd><code>Contents: read</code>, <code>Issues: read and "
        "write</code>, <code>Metadata: read</code>, <code>Pull requests: read and write</code></dd>"
    ) in setup
    assert (
        "<dt>Subscribe to events</dt><dd><code>Issue comment</code>, <code>Pull request</code></dd>"
    ) in setup
