"""Journeys in a real browser (Chromium driven by Playwright) against the app served by uvicorn,
with GitHub and the LLM replaced by local fake servers. The tests take screenshots of the main
pages: into docs/screenshots/ with `make screenshots`."""

import json
import re
import urllib.request
import uuid

import pytest
from playwright.sync_api import Page, expect

from flows.models import Flow, Run
from tests.fakes.github import load_payload, sign

from .conftest import PASSWORD, screenshot

REPO = "Codertocat/Hello-World"

# Every visible form control has a label, and every button a name.
UNLABELLED = """() => Array.from(document.querySelectorAll('input, select, textarea, button'))
  .filter(el => el.type !== 'hidden' && el.offsetParent !== null)
  .filter(el => el.tagName === 'BUTTON'
    ? !(el.textContent.trim() || el.getAttribute('aria-label'))
    : !((el.labels && el.labels.length) || el.getAttribute('aria-label')
        || el.getAttribute('aria-labelledby')))
  .map(el => el.outerHTML.slice(0, 120))"""


def check_basics(page: Page) -> None:
    """Labels on every control, and nothing wider than a laptop screen."""
    assert page.evaluate(UNLABELLED) == []
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def sign_up(page: Page, username: str) -> None:
    page.goto("/accounts/signup/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.com")
    page.get_by_label("Password:", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation:").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("heading", name="Your flows")).to_be_visible()


def send_github_webhook(url: str, secret: str, event: str, payload: str) -> int:
    body = load_payload(payload)
    signature = sign(secret, body)
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": signature,
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def test_code_review_bot_from_template_to_a_reviewed_pull_request(page, github_fake, llm_fake):
    github_fake.add_pull(
        REPO,
        2,
        title="Update the README with new information.",
        files=[
            {
                "filename": "README.md",
                "status": "modified",
                "additions": 1,
                "deletions": 1,
                "changes": 2,
                "patch": "@@ -1 +1 @@\n-# Hello-World\n+# Hello-World, with news",
            }
        ],
    )
    sign_up(page, "dora")
    screenshot(page, "dashboard-empty")

    page.get_by_role("link", name="Templates", exact=True).click()
    check_basics(page)
    screenshot(page, "gallery")
    card = page.locator(".template-card").filter(has_text="Code Review Bot")
    card.get_by_role("button", name="Use template").click()
    expect(page.get_by_role("heading", name="Set up Code Review Bot")).to_be_visible()

    # Connect GitHub and the LLM from the set-up page; each form comes back to it.
    page.get_by_role("link", name="Create a new GitHub connection").click()
    page.get_by_label("Name").fill("Dora's GitHub")
    page.get_by_label("Token").fill(github_fake.token)
    page.get_by_role("button", name="Save the connection").click()
    expect(page.get_by_text("Saved the GitHub connection “Dora's GitHub”.")).to_be_visible()
    page.get_by_role("link", name="Create a new LLM connection").click()
    page.get_by_label("Name").fill("Local reviewer")
    page.get_by_label("Base URL").fill(llm_fake.base_url)
    page.get_by_label("Model").fill("reviewer-1")
    page.get_by_role("button", name="Save the connection").click()
    expect(page.get_by_label("GitHub connection “github”")).to_have_text(
        re.compile("Dora's GitHub")
    )
    expect(page.get_by_label("LLM connection “llm”").locator("option:checked")).to_have_text(
        "Local reviewer (llm)"
    )
    page.get_by_label("github_repo").fill(REPO)
    check_basics(page)
    page.get_by_role("button", name="Save and deploy").click()
    expect(page.get_by_text("Deployed version 1. Your flow is live.")).to_be_visible()

    # The flow page tells what to enter in the repository's webhook settings.
    hook_url = page.locator("#github-url").inner_text()
    secret = page.locator("#github-secret").inner_text()
    flow = Flow.objects.get(owner__username="dora")
    assert hook_url == f"{page.url.split('/flows/')[0]}/hooks/github/{flow.webhook_token}/"
    expect(page.get_by_text("pull_request", exact=True)).to_be_visible()
    check_basics(page)
    screenshot(page, "flow")

    # The LLM holds its answer, so the run is still going when we look at it.
    llm_fake.gate.clear()
    try:
        assert send_github_webhook(hook_url, secret, "pull_request", "pull_request.opened") == 202
        run_link = page.locator("#recent-runs").get_by_role("link", name=re.compile(r"Run #\d+"))
        expect(run_link).to_be_visible()
        run_link.click()
        expect(
            page.get_by_text("Reviewing Codertocat/Hello-World#2: pull request opened")
        ).to_be_visible()
        expect(page.locator(".run-status .badge")).to_have_text("Running")
        page.evaluate("window.stillTheSamePage = true")
        lines_before = page.locator(".log-line").count()
    finally:
        llm_fake.gate.set()
    expect(page.locator(".run-status .badge")).to_have_text("Succeeded", timeout=30_000)
    expect(page.get_by_text("Reviewed README.md")).to_be_visible()
    assert page.locator(".log-line").count() > lines_before
    assert page.evaluate("window.stillTheSamePage") is True
    [comment] = github_fake.comments_on(REPO, 2)
    assert "README.md" in comment["body"]

    # The run stays in the history, found with the filters.
    page.get_by_role("link", name="Runs", exact=True).click()
    page.get_by_label("Status").select_option("succeeded")
    run = Run.objects.get(flow=flow)
    expect(page).to_have_url(re.compile(r"status=succeeded"))
    page.get_by_role("link", name=f"Run #{run.pk}").click()
    expect(page.get_by_role("heading", name=f"Run #{run.pk} of Code Review Bot")).to_be_visible()
    expect(page.locator(f"#run-{run.pk}-item-review .badge").first).to_have_text("Succeeded")
    check_basics(page)
    screenshot(page, "run")

    # Connections: test one, secrets only as their last four characters.
    page.get_by_role("link", name="Connections", exact=True).click()
    row = page.locator("tr").filter(has_text="Dora's GitHub")
    expect(row).to_contain_text("••••" + github_fake.token[-4:])
    assert github_fake.token not in page.content()
    row.get_by_role("button", name="Test Dora's GitHub").click()
    expect(row).to_contain_text("Works")
    check_basics(page)
    screenshot(page, "connections")

    page.get_by_role("link", name="Flows", exact=True).click()
    expect(page.get_by_role("cell", name="100% of 1")).to_be_visible()
    screenshot(page, "dashboard")


PYTHON_STEP = """import time

def main(event, ctx):
    ctx.log("hello " + event["name"])
    started = time.time()
    while time.time() - started < 1.5:
        pass
    ctx.log("still here")
    return {"greeting": "Hello " + event["name"]}
"""


def test_build_a_flow_on_the_canvas_and_run_it(page):
    sign_up(page, "erin")
    page.get_by_label("Name of the new flow").fill("Hello flow")
    page.get_by_role("button", name="Create flow").click()
    expect(page.locator("#node-trigger")).to_be_visible()

    # A Python step from the palette: it joins after the trigger and its form opens.
    page.get_by_role("button", name="Python code").click()
    expect(page.locator("#node-python")).to_be_focused()
    expect(page.get_by_role("heading", name="Step python · Python code")).to_be_visible()
    page.locator("#inspector .CodeMirror").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(PYTHON_STEP)

    # A template step after it; saving shows its missing field on the node and next to the field.
    page.get_by_role("button", name="Template text").click()
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator("#node-template")).to_have_class(re.compile("has-errors"))
    expect(page.locator("#node-template")).to_contain_text("1 problem")
    expect(page.locator("#param-template-error")).to_be_visible()
    page.locator("#param-template").fill("{{ steps.python.greeting }}!")

    # Remove the connection python → template, then connect them again by dragging.
    edges = page.locator("path.edge-hit")
    expect(edges).to_have_count(2)
    edges.nth(1).dispatch_event("click")
    page.get_by_role("button", name="Remove this connection").click()
    expect(edges).to_have_count(1)
    page.locator("#node-python .port.out").drag_to(page.locator("#node-template"))
    expect(edges).to_have_count(2)

    # Move a node with the mouse, and another with the keyboard.
    box = page.locator("#node-template").bounding_box()
    page.mouse.move(box["x"] + 60, box["y"] + 20)
    page.mouse.down()
    page.mouse.move(box["x"] + 60, box["y"] + 140, steps=5)
    page.mouse.up()
    page.locator("#node-python").focus()
    page.keyboard.press("ArrowDown")

    # By keyboard: a block added by mistake goes away with the Delete key; Enter edits a node.
    page.get_by_role("button", name="Filter").focus()
    page.keyboard.press("Enter")
    expect(page.locator("#node-filter")).to_be_focused()
    page.keyboard.press("Delete")
    expect(page.locator("#node-filter")).to_have_count(0)
    expect(page.locator("#inspector")).to_contain_text("Select a node on the canvas to edit it.")
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Shift+Tab")
    expect(page.locator("#node-trigger")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_label("Trigger kind")).to_have_value("trigger.manual")

    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_text("ready to deploy.")).to_be_visible()
    flow = Flow.objects.get(owner__username="erin")
    assert [s["id"] for s in flow.document["steps"]] == ["python", "template"]
    assert sorted(flow.document["edges"]) == [
        ["python", "out", "template"],
        ["trigger", "out", "python"],
    ]
    assert flow.document["layout"]["template"]["y"] >= flow.document["layout"]["python"]["y"] + 100
    assert flow.document["steps"][1]["config"] == {"template": "{{ steps.python.greeting }}!"}

    # Test run of the draft on an edited event: logs and outputs arrive while it runs.
    page.get_by_role("button", name="Test run").click()
    page.get_by_label("Event (JSON, editable)").fill(json.dumps({"name": "Ada"}))
    page.get_by_role("button", name="Run the draft").click()
    expect(page.locator("#test-output").get_by_text("hello Ada")).to_be_visible()
    assert page.locator("#test-output").get_by_text("still here").count() == 0
    expect(page.locator("#test-output").get_by_text("still here")).to_be_visible()
    expect(page.locator("#test-output .run-status .badge")).to_have_text("Succeeded")
    output = page.locator("#test-output [id$='-item-template'] pre").last
    expect(output).to_have_text('{\n  "text": "Hello Ada!"\n}')
    check_basics(page)
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "builder")

    page.get_by_role("button", name="Deploy").click()
    expect(page.get_by_text("Deployed version 1.")).to_be_visible()
    flow.refresh_from_db()
    assert flow.status == Flow.Status.ACTIVE


def test_two_users_cannot_reach_each_others_things(page, browser, app_server):
    sign_up(page, "frank")
    page.get_by_label("Name of the new flow").fill("Frank's flow")
    page.get_by_role("button", name="Create flow").click()
    expect(page.locator("#node-trigger")).to_be_visible()
    flow = Flow.objects.get(owner__username="frank")

    other = browser.new_context(viewport={"width": 1366, "height": 768}, base_url=app_server.url)
    try:
        intruder = other.new_page()
        sign_up(intruder, "grace")
        expect(intruder.get_by_text("Frank's flow")).to_have_count(0)
        for path in (f"/flows/{flow.pk}/", f"/flows/{flow.pk}/builder/", f"/flows/{flow.pk}/runs/"):
            response = intruder.goto(path)
            assert response.status == 404, path
    finally:
        other.close()


@pytest.mark.parametrize("path", ["/", "/accounts/login/", "/accounts/password-reset/"])
def test_public_pages_have_labels_and_fit_a_laptop_screen(page, path):
    page.goto(path)
    check_basics(page)
