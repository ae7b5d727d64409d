"""Fixes of the pages found while building bots in the browser: the URLs shown for webhooks, the
wording of connections, field help, the run page (tracebacks, steps that did not run or were
skipped, event sizes, the engine's run statuses), the warning before a test run that acts for
real, sample events that match the flow, and phone-sized screens."""

import json
import re
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from playwright.sync_api import Page, expect

from flows.models import Flow, Run, StepRun
from integrations.models import Connection
from integrations.triggers import github_mismatch
from web.samples import setting_values

from .conftest import greeter_document, screenshot
from .test_flow_files import log_in

TRACEBACK = (
    "Traceback (most recent call last):\n"
    '  File "step.py", line 3, in main\n'
    "    return 1 / 0\n"
    "ZeroDivisionError: division by zero"
)

# Whether the page is wider than the window (a horizontal scroll bar).
OVERFLOWS = "document.documentElement.scrollWidth > window.innerWidth"


def finished_run(flow: Flow, **fields) -> Run:
    """A failed run of four planned steps: one succeeded, one failed with a traceback, one was
    skipped (a branch not taken), and one was never reached."""
    now = timezone.now()
    run = Run.objects.create(
        flow=flow,
        trigger="webhook",
        status=fields.pop("status", "failed"),
        error=fields.pop("error", "step 'divide' failed:\n" + TRACEBACK),
        event={
            "method": "POST",
            "path": "",
            "query": {},
            "headers": {"content-type": "application/json", "user-agent": "curl/8.5.0"},
            "body": {"a": 1},
        },
        plan={
            "steps": [
                {"id": "fetch", "kind": "logic.template"},
                {"id": "divide", "kind": "code.python"},
                {"id": "praise", "kind": "logic.template"},
                {"id": "notify", "kind": "slack.post"},
            ]
        },
        started_at=now,
        finished_at=now + timedelta(seconds=2),
        **fields,
    )
    StepRun.objects.create(
        run=run, step_id="fetch", position=0, kind="logic.template", status="succeeded",
        input={"template": "x"}, output={"text": "x"}, port="out", finished_at=now,
    )  # fmt: skip
    StepRun.objects.create(
        run=run, step_id="divide", position=1, kind="code.python", status="failed",
        input={}, error=TRACEBACK, port="error", finished_at=now,
    )  # fmt: skip
    StepRun.objects.create(
        run=run, step_id="praise", position=2, kind="logic.template", status="skipped",
        error="path not taken: 'check' went 'false', not 'true'", finished_at=now,
    )  # fmt: skip
    return run


# --- the webhook URLs shown ---------------------------------------------------------------


@override_settings(FLOWS_PUBLIC_URL="", ALLOWED_HOSTS=["bots.local"])
def test_without_a_public_url_the_hooks_use_the_address_the_browser_used(alice_client, greeter):
    greeter.document = greeter_document(trigger={"kind": "trigger.github", "config": {}})
    greeter.save()
    body = alice_client.get(f"/flows/{greeter.pk}/", HTTP_HOST="bots.local:8123").content.decode()
    assert f"http://bots.local:8123/hooks/github/{greeter.webhook_token}/" in body
    assert ":8000" not in body
    greeter.document = greeter_document(trigger={"kind": "trigger.webhook", "config": {}})
    greeter.save()
    body = alice_client.get(f"/flows/{greeter.pk}/", HTTP_HOST="bots.local:8123").content.decode()
    assert f'<code id="webhook-url">http://bots.local:8123/hooks/{greeter.webhook_token}/' in body


# --- wording and field help ---------------------------------------------------------------


def test_connections_read_an_llm_and_a_github(alice_client, greeter):
    greeter.document = {
        **greeter_document(),
        "connections": {"llm": {"service": "llm"}, "github": {"service": "github"}},
    }
    greeter.save()
    body = alice_client.get(f"/flows/{greeter.pk}/setup/").content.decode()
    assert "Choose an LLM connection" in body
    assert "Choose a GitHub connection" in body
    assert "a LLM" not in body
    body = alice_client.get("/connections/new/llm/").content.decode()
    assert "Add an LLM (OpenAI-compatible) connection" in body
    assert "a LLM" not in body


def test_the_setup_page_says_which_steps_need_which_connection(alice_client, greeter):
    document = greeter_document()
    document["steps"] += [
        {"id": "chat", "kind": "llm.chat", "config": {"prompt": "Hi"}},
        {"id": "code", "kind": "code.python", "config": {"source": ""}, "grants": ["llm.chat"]},
    ]
    greeter.document = document
    greeter.save()
    body = alice_client.get(f"/flows/{greeter.pk}/setup/").content.decode()
    assert "Step <strong>chat</strong> needs an LLM connection, but the flow has none yet." in body
    assert "Step <strong>code</strong> needs an LLM connection" in body
    assert "This flow needs no connections." not in body
    greeter.document = {**document, "connections": {"llm": {"service": "llm"}}}
    greeter.save()
    body = alice_client.get(f"/flows/{greeter.pk}/setup/").content.decode()
    assert "Used by <code>chat</code>, <code>code</code>." in body
    assert "has none yet" not in body


def test_setting_help_shows_code_as_code_and_says_things_once(alice_client, greeter):
    greeter.document = {
        **greeter_document(),
        "settings": {
            "schedule": {"value": "", "description": "Five fields, e.g. `0 9 * * 1-5` <b>now</b>."},
            "labels": {"value": ["bug"], "description": "Labels to add, one per line."},
        },
    }
    greeter.save()
    body = alice_client.get(f"/flows/{greeter.pk}/setup/").content.decode()
    assert "e.g. <code>0 9 * * 1-5</code> &lt;b&gt;now&lt;/b&gt;." in body
    assert "`" not in body.split("<main")[1]
    assert "Labels to add, one per line. Commas separate items too.</p>" in body
    assert re.search("one per line", body, re.IGNORECASE | re.MULTILINE)
    assert len(re.findall("one per line", body, re.IGNORECASE)) == 1


def test_node_field_help_says_the_code_hint_once():
    from flows.catalog import get_block
    from web.forms import node_fields
    from web.templatetags.web_extras import inline_code

    [source] = node_fields(get_block("code.python"), {}, {})
    assert source.help.count("main(event, ctx)") == 1
    assert "<code>main(event, ctx)</code>" in inline_code(source.help)


# --- the run page ----------------------------------------------------------------------------


def test_event_size_labels_say_the_size_and_only_fold_big_events(alice_client, greeter):
    small = finished_run(greeter)
    body = alice_client.get(f"/runs/{small.pk}/").content.decode()
    assert "large" not in body
    big = finished_run(greeter)
    big.event = {"body": {"items": [{"n": n, "text": "x" * 40} for n in range(100)]}}
    big.save()
    body = alice_client.get(f"/runs/{big.pk}/").content.decode()
    assert re.search(
        r"<summary>Event <span class=\"muted small\">\(\d\.\d KB, \d+ lines: show", body
    )
    assert "large" not in body


def test_finished_run_page_journey(page: Page, alice, greeter):
    run = finished_run(greeter)
    log_in(page, "alice")
    page.goto(f"/runs/{run.pk}/")

    # The run's error and the step's head with one sentence; the traceback is folded below it
    # and keeps its lines.
    run_error = page.locator(".run-live").get_by_role("alert").first
    assert run_error.inner_text() == "step 'divide' failed: ZeroDivisionError: division by zero"
    step_error = page.locator(f"#run-{run.pk}-item-divide").get_by_role("alert")
    assert step_error.inner_text() == "ZeroDivisionError: division by zero"
    whole = page.locator(".run-live > details.error-details").first
    expect(whole.locator("pre")).to_be_hidden()
    whole.locator("summary").click()
    assert whole.locator("pre").inner_text().splitlines() == [
        "step 'divide' failed:",
        *TRACEBACK.splitlines(),
    ]

    # A skipped step says so and why; a step never reached did not run (nothing is waiting).
    skipped = page.locator(f"#run-{run.pk}-item-praise")
    expect(skipped.locator(".badge")).to_have_text("Skipped")
    expect(skipped).to_contain_text("Path not taken: 'check' went 'false', not 'true'")
    unreached = page.locator(f"#run-{run.pk}-item-notify")
    expect(unreached.locator(".badge")).to_have_text("Did not run")
    expect(unreached).to_contain_text("The run ended before it reached this step.")
    expect(page.locator(".run-live")).not_to_contain_text("Waiting")
    logs_note = page.locator(f"#run-{run.pk}-log").evaluate(
        "el => getComputedStyle(el, '::before').content"
    )
    assert logs_note == '"This run wrote no log lines."'

    # A small event is shown as it is, without a "large" label.
    expect(page.get_by_text("Event", exact=True)).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("large")
    screenshot(page, "run-failed")


@pytest.mark.parametrize(
    ("status", "label"),
    [
        ("succeeded_with_errors", "Succeeded with errors"),
        ("cancelled", "Cancelled"),
        ("waiting", "Waiting"),
        ("handed_over", "Handed over"),
    ],
)
def test_run_statuses_have_labels_in_the_list_and_on_the_run_page(
    alice_client, greeter, status, label
):
    run = Run.objects.create(
        flow=greeter,
        trigger="manual",
        status=status,
        resume_at=timezone.now() + timedelta(hours=2) if status == "waiting" else None,
    )
    rows = alice_client.get("/runs/").content.decode()
    assert f'<span class="badge {status}">{label}</span>' in rows
    if status == "waiting":
        assert f'{label}</span> <span class="muted small">until <time' in rows
    page = alice_client.get(f"/runs/{run.pk}/").content.decode()
    assert f'class="badge {status}" role="status">{label}</span>' in page
    dashboard = alice_client.get("/dashboard/").content.decode()
    assert f'<span class="badge {status}">{label}</span>' in dashboard


def test_a_waiting_run_says_when_it_goes_on_and_a_run_with_errors_why(alice_client, greeter):
    resume = timezone.now() + timedelta(hours=2)
    waiting = Run.objects.create(flow=greeter, trigger="manual", status="waiting", resume_at=resume)
    StepRun.objects.create(
        run=waiting, step_id="pause", position=0, kind="logic.wait", status="waiting",
        resume_at=resume,
    )  # fmt: skip
    body = alice_client.get(f"/runs/{waiting.pk}/").content.decode()
    assert "Parked by a wait: it goes on at <time" in body
    assert "(1\xa0hour, 59\xa0minutes from now)" in body
    assert 'Waiting</span>\n    <strong class="step-id">pause</strong>' in body
    assert '<span class="muted small">until <time' in body
    mixed = finished_run(greeter, status="succeeded_with_errors", error="")
    body = alice_client.get(f"/runs/{mixed.pk}/").content.decode()
    assert "a step whose error path the flow went on along, or items a loop went on past" in body
    assert "the flow went on along its error path</span>" in body


# --- test runs that act for real --------------------------------------------------------------


def acting_document() -> dict:
    document = greeter_document("Poster")
    document["connections"] = {"slack": {"service": "slack"}, "github": {"service": "github"}}
    document["steps"] += [
        {"id": "notify", "kind": "slack.post", "config": {"text": "hi"}},
        {
            "id": "review",
            "kind": "code.python",
            "config": {"source": "def main(event, ctx):\n    return {}\n"},
            "grants": ["github.pr.files", "github.comment.upsert", "llm.chat"],
        },
    ]
    document["edges"] += [["greet", "notify"], ["notify", "review"]]
    return document


def test_the_test_panel_warns_before_a_run_that_acts_for_real(page: Page, alice, greeter):
    poster = Flow.objects.create(
        owner=alice, name="Poster", slug="poster", document=acting_document()
    )
    log_in(page, "alice")

    page.goto(f"/flows/{greeter.pk}/builder/")
    page.get_by_role("button", name="Test run").click()
    expect(page.get_by_label("Event (JSON, editable)")).to_be_visible()
    expect(page.locator("#test-panel")).not_to_contain_text("acts for real")

    page.goto(f"/flows/{poster.pk}/builder/")
    page.get_by_role("button", name="Test run").click()
    warning = page.locator("#test-panel").get_by_role("note")
    expect(warning).to_contain_text("This test run acts for real.")
    expect(warning).to_contain_text("step notify posts to Slack")
    expect(warning).to_contain_text("step review may comment on GitHub")
    expect(warning).not_to_contain_text("greet")
    screenshot(page, "builder-test-warning")

    # The warning follows the canvas, saved or not: without the Slack step it is not named.
    page.get_by_role("button", name="Test run").click()
    page.locator("#node-notify").focus()
    page.keyboard.press("Delete")
    expect(page.locator("#node-notify")).to_have_count(0)
    page.get_by_role("button", name="Test run").click()
    expect(warning).not_to_contain_text("notify")
    expect(warning).to_contain_text("step review may comment on GitHub")


# --- sample events that match the flow ---------------------------------------------------------


def github_flow(owner, events: list[str]) -> Flow:
    document = greeter_document(
        "Repo bot",
        trigger={
            "kind": "trigger.github",
            "config": {"events": events, "repository": "{{ settings.github_repo }}"},
        },
    )
    document["settings"] = {"github_repo": {"value": "octo-org/widgets", "required": True}}
    return Flow.objects.create(owner=owner, name="Repo bot", slug="repo-bot", document=document)


def sample(client, flow: Flow, choice: str) -> dict:
    response = client.get(f"/flows/{flow.pk}/builder/sample/", {"sample": choice})
    return json.loads(re.search(r"<textarea[^>]*>(.*)</textarea>", response.content.decode(), re.S)
                      .group(1).replace("&quot;", '"').replace("&#x27;", "'")
                      .replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&"))  # fmt: skip


def test_github_samples_come_from_the_flows_repository_and_pass_its_trigger(alice_client, alice):
    flow = github_flow(alice, ["pull_request.opened"])
    event = sample(alice_client, flow, "github:pull_request.opened")
    payload = event["payload"]
    assert payload["repository"]["full_name"] == "octo-org/widgets"
    assert payload["repository"]["name"] == "widgets"
    assert payload["repository"]["owner"]["login"] == "octo-org"
    assert payload["pull_request"]["url"].startswith(
        "https://api.github.com/repos/octo-org/widgets/pulls/"
    )
    assert payload["number"] == 2
    assert "Codertocat/Hello-World" not in json.dumps(payload)
    config = flow.document["trigger"]["config"]
    settings = setting_values(flow.document)
    assert github_mismatch(config, settings, event["name"], payload) == ""


def test_the_starting_sample_is_one_of_the_events_the_trigger_listens_to(alice_client, alice):
    flow = github_flow(alice, ["issues.opened"])
    event = sample(alice_client, flow, "default")
    assert (event["name"], event["action"]) == ("issues", "opened")
    assert event["payload"]["repository"]["full_name"] == "octo-org/widgets"


# --- phone-sized screens ------------------------------------------------------------------------


def test_pages_fit_a_phone_and_the_builder_says_editing_needs_a_wider_screen(
    page: Page, alice, greeter
):
    page.set_viewport_size({"width": 390, "height": 844})
    Flow.objects.create(
        owner=alice,
        name="A flow with a rather long name that goes on and on for a while",
        slug="long",
        document=greeter_document(trigger={"kind": "trigger.github", "config": {}}),
    )
    run = finished_run(greeter)
    log_in(page, "alice")
    assert not page.evaluate(OVERFLOWS), "the dashboard is wider than a phone"
    screenshot(page, "phone-dashboard")
    page.get_by_role("link", name=re.compile("rather long name")).first.click()
    expect(page.locator("#github-url")).to_be_visible()
    assert not page.evaluate(OVERFLOWS), "the flow page is wider than a phone"
    page.goto(f"/runs/{run.pk}/")
    assert not page.evaluate(OVERFLOWS), "the run page is wider than a phone"
    screenshot(page, "phone-run")
    page.goto("/runs/")
    assert not page.evaluate(OVERFLOWS), "the run list is wider than a phone"
    page.goto(f"/flows/{greeter.pk}/builder/")
    note = page.locator(":text('Editing a flow needs a wider screen'):visible")
    expect(note).to_have_count(1)

    # On a laptop the note is not there.
    page.set_viewport_size({"width": 1366, "height": 768})
    expect(note).to_have_count(0)


# --- a branching flow run by the engine, watched live -------------------------------------------


def branching_document() -> dict:
    return {
        "schema": "flowbuilder/flow@2",
        "name": "Brancher",
        "trigger": {"kind": "trigger.manual", "config": {}},
        "settings": {},
        "connections": {},
        "steps": [
            {"id": "check", "kind": "logic.if", "config": {"condition": "{{ event.go }}"}},
            {"id": "yes", "kind": "logic.template", "config": {"template": "went"}},
            {"id": "no", "kind": "logic.template", "config": {"template": "stayed"}},
        ],
        "edges": [["trigger", "out", "check"], ["check", "true", "yes"], ["check", "false", "no"]],
        "layout": {
            "trigger": {"x": 40, "y": 120},
            "check": {"x": 300, "y": 120},
            "yes": {"x": 560, "y": 40},
            "no": {"x": 560, "y": 220},
        },
    }


def test_a_test_run_shows_the_branch_not_taken_as_skipped_with_its_reason(page: Page, alice):
    flow = Flow.objects.create(
        owner=alice, name="Brancher", slug="brancher", document=branching_document()
    )
    log_in(page, "alice")
    page.goto(f"/flows/{flow.pk}/builder/")
    page.get_by_role("button", name="Test run").click()
    page.get_by_label("Event (JSON, editable)").fill(json.dumps({"go": True}))
    page.get_by_role("button", name="Run the draft").click()
    output = page.locator("#test-output")
    expect(output.locator(".run-status .badge")).to_have_text("Succeeded")
    run = Run.objects.get(flow=flow)
    expect(output.locator(f"#run-{run.pk}-item-yes .badge").first).to_have_text("Succeeded")
    skipped = output.locator(f"#run-{run.pk}-item-no")
    expect(skipped.locator(".badge")).to_have_text("Skipped")
    expect(skipped).to_contain_text("Path not taken: 'check' went 'true', not 'false'")
    expect(output.locator(f"#run-{run.pk}-item-check")).to_contain_text("went “true”")


def test_a_step_in_a_loop_shows_its_item_and_folds_the_other_items(alice_client, greeter):
    run = Run.objects.create(
        flow=greeter,
        trigger="manual",
        status="succeeded",
        plan={"steps": [{"id": "review", "kind": "code.python"}]},
    )
    for index in range(3):
        StepRun.objects.create(
            run=run, step_id="review", position=0, kind="code.python", status="succeeded",
            scope=f"files[{index}]", output={"index": index}, port="out",
        )  # fmt: skip
    body = alice_client.get(f"/runs/{run.pk}/").content.decode()
    assert '<span class="muted small">3 items: 3 succeeded · shown: files[2]</span>' in body
    assert "Its other loop items and attempts (2)</summary>" in body
    assert "In files[0], attempt 1: Succeeded after" in body


def test_the_warning_reads_the_posted_canvas_or_else_the_saved_draft(client, alice, bob):
    flow = Flow.objects.create(owner=alice, name="Poster", slug="p", document=acting_document())
    client.force_login(alice)
    saved = client.post(f"/flows/{flow.pk}/test-effects/", {"document": ""}).content.decode()
    assert "step <strong>notify</strong> posts to Slack" in saved
    canvas = client.post(
        f"/flows/{flow.pk}/test-effects/", {"document": json.dumps(greeter_document())}
    ).content.decode()
    assert canvas.strip() == ""
    client.force_login(bob)
    assert client.post(f"/flows/{flow.pk}/test-effects/", {"document": ""}).status_code == 404


def test_telegram_is_not_pointed_at_a_relative_url_when_the_public_url_is_unset(
    alice, greeter, telegram, settings
):
    from flows.capabilities import CapabilityError
    from integrations.services.telegram import set_webhook

    settings.FLOWS_PUBLIC_URL = ""
    bot = Connection.objects.create(owner=alice, service="telegram", name="Bot")
    with pytest.raises(CapabilityError, match="Set FLOWS_PUBLIC_URL"):
        set_webhook(bot, greeter)
    assert telegram.webhook == {}
