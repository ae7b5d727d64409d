"""An agent built in the builder, in Chromium: its tools ticked in the node's form (a tool of a
service the flow has no connection for brings that connection's picker), deployed, then a test
run whose model turns and tool calls appear live under the step."""

import re
import threading

from playwright.sync_api import Page, expect

from flows.models import Flow
from integrations.models import Connection
from tests.fakes.llm import calls

from .conftest import screenshot
from .test_builder_canvas import new_flow


def connect(owner, service: str, name: str, config: dict, secrets: dict) -> Connection:
    connection = Connection(owner=owner, service=service, name=name, config=config)
    connection.set_secrets(secrets)
    connection.save()
    return connection


def test_an_agents_tools_are_picked_in_its_form_and_its_calls_show_live(
    page: Page, app_server, llm_fake, github_fake
):
    new_flow(page, "uma", "Repo helper")
    owner = Flow.objects.get(owner__username="uma").owner
    connect(owner, "llm", "Local model", {"base_url": llm_fake.base_url, "model": "reviewer-1"}, {})
    connect(owner, "github", "My GitHub", {}, {"token": github_fake.token})
    page.reload()

    page.get_by_role("button", name="LLM: agent", exact=True).click()
    expect(page.get_by_role("heading", name="Step agent · LLM: agent")).to_be_visible()
    page.get_by_label("LLM connection").select_option(label="Local model")
    page.get_by_role("textbox", name="User message").fill("Remember that we ship on Fridays.")
    tools = page.get_by_role("group", name="Tools the agent may call")
    tools.get_by_label("Notes: save and recall facts across runs of this flow").check()
    # GitHub's tools wait folded until the flow has a GitHub connection.
    tools.locator("summary", has_text="GitHub").click()
    tools.get_by_label("GitHub: read a file").check()
    expect(page.get_by_label("GitHub connection")).to_be_visible()
    page.get_by_label("GitHub connection").select_option(label="My GitHub")
    tools = page.get_by_role("group", name="Tools the agent may call")
    tools.get_by_label("GitHub: reply to an issue").check()
    page.locator('[data-tool-ask="github.issue.reply"]').check()
    screenshot(page, "agent-tools")

    page.get_by_role("button", name="Deploy").click()
    expect(page.get_by_text("Deployed version 1.")).to_be_visible()
    flow = Flow.objects.get(owner__username="uma")
    [step] = flow.document["steps"]
    assert step["config"]["tools"] == [
        {"capability": "github.file.read"},
        {"capability": "github.issue.reply", "ask_first": True},
        {"notes": True},
    ]
    assert sorted(flow.document["connections"]) == ["github", "llm"]

    # A test run: the model saves a note, then waits, while the page shows what it did so far.
    hold = threading.Event()
    llm_fake.replies += [
        calls(("notes_save", {"name": "release day", "text": "Fridays"})),
        lambda body: (hold.wait(30), "Noted: we ship on Fridays.")[1],
    ]
    try:
        page.get_by_role("button", name="Test run").click()
        page.get_by_role("button", name="Run the draft").click()
        trace = page.locator("[id$='-trace-agent']").first
        expect(trace.locator(".trace-entry")).to_have_count(2)
        expect(trace).to_contain_text("asked for 1 tool call: notes_save")
        expect(trace.locator(".trace-tool")).to_contain_text("notes_save")
        expect(trace.locator(".trace-tool .badge")).to_have_text("ok")
        screenshot(page, "agent-live")
    finally:
        hold.set()
    expect(page.locator("[id$='-trace-agent']").first).to_contain_text("turn 2")
    expect(page.get_by_text("Noted: we ship on Fridays.").first).to_be_visible()


def test_a_field_typed_while_the_node_form_reloads_is_kept(page: Page, app_server, llm_fake):
    """Ticking a tool reloads the node's form from the server (a tool may need a connection
    picker). A field typed before that form arrives must neither vanish from the form nor be
    saved as the older value."""
    new_flow(page, "vic", "Notes keeper")
    owner = Flow.objects.get(owner__username="vic").owner
    connect(owner, "llm", "Local model", {"base_url": llm_fake.base_url, "model": "reviewer-1"}, {})
    page.reload()
    page.get_by_role("button", name="LLM: agent", exact=True).click()
    expect(page.get_by_role("heading", name="Step agent · LLM: agent")).to_be_visible()
    page.get_by_label("LLM connection").select_option(label="Local model")
    expect(page.get_by_label("LLM connection")).to_have_value(re.compile(r"\d+"))

    held = []  # the next form, held back until the field has been typed

    def hold(route) -> None:
        if held:
            route.continue_()
        else:
            held.append((route, route.fetch()))

    page.route("**/builder/node/", hold)
    tools = page.get_by_role("group", name="Tools the agent may call")
    tools.get_by_label("Notes: save and recall facts across runs of this flow").check()
    for _ in range(50):
        if held:
            break
        page.wait_for_timeout(100)
    assert held, "ticking a tool reloads the node's form"
    page.get_by_role("textbox", name="User message").fill("Remember the release day.")
    route, stale = held[0]
    route.fulfill(response=stale)  # rendered before the message was typed

    expect(page.get_by_role("textbox", name="User message")).to_have_value(
        "Remember the release day."
    )
    notes = page.get_by_label("Notes: save and recall facts across runs of this flow")
    expect(notes).to_be_checked()
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_text(re.compile("Saved at"))).to_be_visible()
    [step] = Flow.objects.get(owner__username="vic").document["steps"]
    assert step["config"]["prompt"] == "Remember the release day."
    assert step["config"]["tools"] == [{"notes": True}]
