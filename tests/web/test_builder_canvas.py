"""Journeys on the builder canvas in Chromium, with clicks and keys only: a bot built from an
empty canvas with its connection created on the node, ports and loop bodies drawn from the block
catalog, zoom, pan and arrange, undo/redo, copy/paste, and drafts edited in two tabs."""

import json
import re
import urllib.request

import pytest
from playwright.sync_api import Page, expect

from flows.models import Flow
from integrations.models import Connection
from web.views.builder import block_catalog

from .conftest import screenshot
from .test_browser import check_basics, sign_up

CODE = """def main(event, ctx):
    topic = event["body"]["topic"]
    ctx.log("topic: " + topic)
    return {"topic": topic.upper()}
"""


def new_flow(page: Page, username: str, name: str) -> None:
    sign_up(page, username)
    page.get_by_label("Name of the new flow").fill(name)
    page.get_by_role("button", name="Create flow").click()
    expect(page.locator("#node-trigger")).to_be_visible()


def type_code(page: Page, source: str) -> None:
    page.locator("#inspector .CodeMirror").click()
    page.keyboard.press("Control+A")
    page.keyboard.insert_text(source)


def post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        return json.loads(response.read())


def test_a_webhook_bot_answering_through_an_llm_is_built_from_an_empty_canvas(
    page, app_server, llm_fake
):
    new_flow(page, "hana", "Topic bot")

    # The trigger becomes a webhook.
    page.locator("#node-trigger").click()
    page.get_by_label("Trigger kind").select_option(label="Webhook")
    expect(page.locator("#node-trigger")).to_contain_text("Webhook")

    # A Python step, then an LLM block found with the palette's search box.
    page.get_by_role("button", name="Python code").click()
    type_code(page, CODE)
    page.get_by_label("Search blocks").fill("llm chat")
    expect(page.get_by_role("button", name="Python code", exact=True)).to_be_hidden()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Step chat · LLM: chat")).to_be_visible()

    # The node asks for its LLM connection; a new one is created in a dialog, tested, saved.
    picker = page.get_by_label("LLM connection")
    expect(picker.locator("option:checked")).to_have_text("You have no LLM connection yet")
    picker.select_option(label="Create a new one…")
    dialog = page.get_by_role("dialog", name="New LLM connection")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Name").fill("Local model")
    dialog.get_by_label("Base URL").fill(llm_fake.base_url)
    dialog.get_by_label("Model").fill("reviewer-1")
    dialog.get_by_role("button", name="Test").click()
    expect(dialog.get_by_text(re.compile("Works: Connected"))).to_be_visible()
    check_basics(page)
    screenshot(page, "builder-connection-dialog")
    dialog.get_by_role("button", name="Save and use").click()
    expect(dialog).to_be_hidden()
    expect(page.get_by_label("LLM connection").locator("option:checked")).to_have_text(
        "Local model"
    )
    expect(page.locator("#canvas-live")).to_contain_text("uses it")
    page.get_by_role("textbox", name="Prompt template", exact=True).fill(
        "Tell me about {{ steps.python.topic }}"
    )

    page.get_by_role("button", name="Deploy").click()
    expect(page.get_by_text("Deployed version 1.")).to_be_visible()
    flow = Flow.objects.get(owner__username="hana")
    connection = Connection.objects.get(owner__username="hana", service="llm")
    assert flow.document["connections"] == {"llm": {"service": "llm", "connection": connection.pk}}
    assert flow.document["steps"][1]["connection"] == "llm"
    assert sorted(flow.document["edges"]) == [
        ["python", "out", "chat"],
        ["trigger", "out", "python"],
    ]

    answer = post_json(f"{app_server.url}/hooks/{flow.webhook_token}/?wait=10", {"topic": "otters"})
    assert answer["status"] == "succeeded", answer
    assert "echo: Tell me about OTTERS" in json.dumps(answer["output"])


def test_choosing_another_connection_keeps_the_aliases_in_step_with_the_nodes(page, llm_fake):
    new_flow(page, "ivan", "Two models")
    for name in ("First model", "Second model"):
        Connection.objects.create(
            owner=Flow.objects.get(owner__username="ivan").owner,
            service="llm",
            name=name,
            config={"base_url": llm_fake.base_url, "model": "reviewer-1"},
        )
    page.reload()
    page.get_by_role("button", name="LLM: chat", exact=True).click()
    page.get_by_label("LLM connection").select_option(label="First model")
    expect(page.get_by_label("LLM connection").locator("option:checked")).to_have_text(
        "First model"
    )
    # A second LLM node on the other connection: the flow now has two aliases, and says which.
    page.get_by_role("button", name="LLM: chat", exact=True).click()
    expect(page.get_by_role("heading", name="Step chat_2 · LLM: chat")).to_be_visible()
    page.get_by_label("LLM connection").select_option(label="Second model")
    expect(page.get_by_text("this node uses “llm_2”")).to_be_visible()
    page.locator("#node-chat").click()
    expect(page.get_by_text("this node uses “llm”")).to_be_visible()

    # The first node switches to the second connection: its alias is no longer needed.
    page.get_by_label("LLM connection").select_option(label="Second model")
    page.keyboard.press("Control+s")
    expect(page.get_by_text("Saved at")).to_be_visible()
    flow = Flow.objects.get(owner__username="ivan")
    second = Connection.objects.get(name="Second model")
    assert flow.document["connections"] == {"llm_2": {"service": "llm", "connection": second.pk}}
    assert [s.get("connection") for s in flow.document["steps"]] == ["llm_2", "llm_2"]


def test_the_block_catalog_tells_the_canvas_each_blocks_ports():
    catalog = block_catalog()
    assert catalog["logic.filter"]["ports"] == ["out"]
    assert catalog["logic.if"]["ports"] == ["true", "false"]
    assert catalog["logic.switch"]["ports_from"] == "cases"
    assert catalog["logic.switch"]["ports"] == ["default"]
    assert catalog["logic.foreach"]["has_body"] is True
    assert "body" in catalog["logic.foreach"]["ports"]
    assert catalog["code.python"]["has_body"] is False


def node_box(page: Page, node_id: str) -> dict:
    return page.locator(f"#node-{node_id}").bounding_box()


def port(page: Page, node_id: str, name: str):
    return page.locator(f'#node-{node_id} [data-port="{name}"]')


def test_branches_connect_from_labelled_ports_and_loop_bodies_are_boxed(page):
    new_flow(page, "jo", "Branches")

    # An If node shows its true, false and error ports, each labelled.
    page.get_by_role("button", name="If", exact=True).click()
    for name in ("true", "false", "error"):
        expect(port(page, "if", name)).to_have_text(name)
    # A step added after it joins its first port; the false port is dragged to another one.
    page.get_by_role("button", name="Template text", exact=True).click()
    page.locator("#node-if").click()
    page.get_by_role("button", name="Template text", exact=True).click()
    port(page, "if", "false").drag_to(page.locator("#node-template_2"))
    expect(page.locator("#canvas-live")).to_contain_text("Connected if (false) to template_2")
    # By keyboard, template_2 no longer runs after the true port.
    page.get_by_label("if (true)").uncheck()

    # A switch's ports follow its cases.
    page.get_by_role("button", name="Switch", exact=True).click()
    expect(port(page, "switch", "first")).to_have_text("first")
    expect(port(page, "switch", "default")).to_have_text("default")
    page.get_by_role("textbox", name="Cases").fill(
        json.dumps([{"port": "small", "op": "equals", "match": "s"}, {"port": "large"}])
    )
    expect(port(page, "switch", "large")).to_have_text("large")
    expect(port(page, "switch", "first")).to_have_count(0)

    # A step added to a For each node goes into its body, drawn in a box under it.
    page.locator("#node-trigger").click()
    page.get_by_role("button", name="For each", exact=True).click()
    page.get_by_role("button", name="Template text", exact=True).click()
    group = page.locator("#group-foreach")
    expect(group).to_contain_text("Loop body of foreach")
    box, inner = group.bounding_box(), node_box(page, "template_3")
    assert box["x"] <= inner["x"] and inner["x"] + inner["width"] <= box["x"] + box["width"]
    assert box["y"] <= inner["y"] and inner["y"] + inner["height"] <= box["y"] + box["height"]
    assert box["y"] > node_box(page, "foreach")["y"]
    check_basics(page)
    screenshot(page, "builder-branches")

    page.keyboard.press("Control+s")
    expect(page.locator("#builder-status")).to_contain_text("Draft saved")
    document = Flow.objects.get(owner__username="jo").document
    assert ["if", "true", "template"] in document["edges"]
    assert ["if", "false", "template_2"] in document["edges"]
    assert ["if", "true", "template_2"] not in document["edges"]
    assert ["foreach", "body", "template_3"] in document["edges"]
    steps = {s["id"]: s for s in document["steps"]}
    assert steps["template_3"]["parent"] == "foreach"
    assert steps["switch"]["config"]["cases"][1] == {"port": "large"}


def template_step(step_id: str) -> dict:
    return {"id": step_id, "kind": "logic.template", "config": {"template": step_id}}


def messy_document() -> dict:
    """A diamond whose nodes all sit on one far-away spot."""
    ids = ["a", "b", "c", "d"]
    return {
        "schema": "flowbuilder/flow@2",
        "name": "Messy",
        "trigger": {"kind": "trigger.manual", "config": {}},
        "settings": {},
        "connections": {},
        "steps": [template_step(i) for i in ids],
        "edges": [
            ["trigger", "out", "a"],
            ["a", "out", "b"],
            ["a", "out", "c"],
            ["b", "out", "d"],
            ["c", "out", "d"],
        ],
        "layout": {i: {"x": 2600, "y": 1800} for i in ["trigger", *ids]},
    }


def inside(inner: dict, outer: dict) -> bool:
    return (
        outer["x"] <= inner["x"]
        and inner["x"] + inner["width"] <= outer["x"] + outer["width"]
        and outer["y"] <= inner["y"]
        and inner["y"] + inner["height"] <= outer["y"] + outer["height"]
    )


def overlap(a: dict, b: dict) -> bool:
    return not (
        a["x"] + a["width"] <= b["x"]
        or b["x"] + b["width"] <= a["x"]
        or a["y"] + a["height"] <= b["y"]
        or b["y"] + b["height"] <= a["y"]
    )


NODES = ["trigger", "a", "b", "c", "d"]


def test_the_canvas_fits_arranges_zooms_and_pans(page):
    new_flow(page, "kim", "Messy")
    Flow.objects.filter(owner__username="kim").update(document=messy_document())
    page.reload()

    # Far-away nodes are fitted into view on opening, never under the inspector.
    viewport = page.locator("#canvas-viewport").bounding_box()
    inspector = page.locator("#inspector").bounding_box()
    for node in NODES:
        assert inside(node_box(page, node), viewport), node
        assert node_box(page, node)["x"] + node_box(page, node)["width"] < inspector["x"]

    # Arrange lays the diamond out left to right, nothing on top of anything.
    page.get_by_role("button", name="Arrange").click()
    boxes = {n: node_box(page, n) for n in NODES}
    assert boxes["trigger"]["x"] < boxes["a"]["x"] < boxes["b"]["x"] < boxes["d"]["x"]
    assert boxes["b"]["x"] == boxes["c"]["x"]
    for i, first in enumerate(NODES):
        for second in NODES[i + 1 :]:
            assert not overlap(boxes[first], boxes[second]), (first, second)
        assert inside(boxes[first], viewport)
    screenshot(page, "builder-arranged")

    # Zoom with the buttons and with Ctrl+wheel; "Fit to view" shows everything again.
    width = node_box(page, "a")["width"]
    page.get_by_role("button", name="Zoom in").click()
    assert node_box(page, "a")["width"] == pytest.approx(width * 1.2, rel=0.02)
    expect(page.get_by_label("Zoom level")).not_to_have_text("100%")
    page.mouse.move(viewport["x"] + 200, viewport["y"] + 200)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -100)
    page.keyboard.up("Control")
    assert node_box(page, "a")["width"] > width * 1.3
    page.get_by_role("button", name="Zoom out").click()
    page.get_by_role("button", name="Fit to view").click()
    for node in NODES:
        assert inside(node_box(page, node), viewport), node

    # Dragging the background pans; so does dragging a node while Space is held.
    before = node_box(page, "a")
    empty = (viewport["x"] + viewport["width"] - 15, viewport["y"] + viewport["height"] - 15)
    page.mouse.move(*empty)
    page.mouse.down()
    page.mouse.move(empty[0] - 100, empty[1] - 40, steps=4)
    page.mouse.up()
    after = node_box(page, "a")
    assert (after["x"], after["y"]) == pytest.approx((before["x"] - 100, before["y"] - 40), abs=1)
    page.locator("#canvas-viewport").focus()
    page.keyboard.down(" ")
    b_before = node_box(page, "b")
    page.mouse.move(after["x"] + 30, after["y"] + 20)
    page.mouse.down()
    page.mouse.move(after["x"] + 90, after["y"] + 20, steps=4)
    page.mouse.up()
    page.keyboard.up(" ")
    assert node_box(page, "a")["x"] == pytest.approx(after["x"] + 60, abs=1)
    assert node_box(page, "b")["x"] == pytest.approx(b_before["x"] + 60, abs=1)

    # Shift+drag on the background selects the nodes it covers.
    page.get_by_role("button", name="Fit to view").click()
    top_left = node_box(page, "trigger")
    bottom = node_box(page, "c")
    page.keyboard.down("Shift")
    page.mouse.move(top_left["x"] - 10, top_left["y"] - 10)
    page.mouse.down()
    page.mouse.move(bottom["x"] + bottom["width"] + 5, bottom["y"] + bottom["height"] + 5, steps=5)
    page.mouse.up()
    page.keyboard.up("Shift")
    expect(page.get_by_role("heading", name="4 nodes selected")).to_be_visible()

    # A block dragged from the palette lands where it is dropped.
    page.get_by_role("button", name="Filter", exact=True).drag_to(
        page.locator("#canvas-viewport"), target_position={"x": 300, "y": 60}
    )
    dropped = node_box(page, "filter")
    assert abs(dropped["x"] + dropped["width"] / 2 - (viewport["x"] + 300)) < 40
    assert abs(dropped["y"] - (viewport["y"] + 60)) < 40
    expect(page.get_by_role("heading", name="Step filter · Filter")).to_be_visible()


def test_undo_redo_delete_copy_paste_and_multi_select_from_the_keyboard(page, browser, app_server):
    new_flow(page, "lee", "Editing")
    nodes = page.locator(".node")

    # Every change can be undone and redone, with the keys and with the buttons.
    page.get_by_role("button", name="Template text", exact=True).click()
    page.locator("#param-template").fill("Hi there")
    page.locator("#node-template").focus()
    page.keyboard.press("ArrowRight")
    expect(nodes).to_have_count(2)
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+z")
    page.locator("#node-template").click()
    expect(page.locator("#param-template")).to_have_value("")
    page.get_by_role("button", name="Undo").click()
    expect(nodes).to_have_count(1)
    page.keyboard.press("Control+Shift+z")
    expect(nodes).to_have_count(2)
    page.get_by_role("button", name="Redo").click()
    page.locator("#node-template").click()
    expect(page.locator("#param-template")).to_have_value("Hi there")

    # Delete asks nothing and can be undone.
    page.locator("#node-template").focus()
    page.keyboard.press("Delete")
    expect(page.locator("#node-template")).to_have_count(0)
    expect(page.locator("#canvas-live")).to_contain_text("Deleted template")
    page.keyboard.press("Control+z")
    expect(page.locator("#node-template")).to_be_visible()

    # Ctrl+D duplicates; Shift+click selects several; Ctrl+C copies them.
    page.locator("#node-template").click()
    page.keyboard.press("Control+d")
    expect(page.locator("#node-template_2")).to_be_focused()
    page.locator("#node-template").click(modifiers=["Shift"])
    expect(page.get_by_role("heading", name="2 nodes selected")).to_be_visible()
    expect(page.locator("#canvas-live")).to_contain_text("2 nodes selected")
    page.keyboard.press("Control+c")
    page.keyboard.press("Control+s")
    expect(page.get_by_text("Draft saved")).to_be_visible()
    document = Flow.objects.get(owner__username="lee").document
    assert [s["config"] for s in document["steps"]] == [{"template": "Hi there"}] * 2

    # The copy pastes into another flow.
    page.get_by_role("link", name="Flows", exact=True).click()
    page.get_by_label("Name of the new flow").fill("Second")
    page.get_by_role("button", name="Create flow").click()
    expect(page.locator("#node-trigger")).to_be_visible()
    page.locator("#canvas-viewport").focus()
    page.keyboard.press("Control+v")
    expect(page.locator("#node-template")).to_be_visible()
    expect(page.locator("#node-template_2")).to_be_visible()
    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_text("Draft saved")).to_be_visible()
    second = Flow.objects.get(owner__username="lee", name="Second")
    assert sorted(s["id"] for s in second.document["steps"]) == ["template", "template_2"]


def test_leaving_with_unsaved_changes_asks_first(page):
    new_flow(page, "mo", "Unsaved")
    page.get_by_role("button", name="Filter", exact=True).click()
    page.get_by_role("link", name="Overview").click()
    dialog = page.get_by_role("dialog", name="Leave with unsaved changes?")
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Stay here").click()
    expect(page.locator("#node-filter")).to_be_visible()
    page.get_by_role("link", name="Overview").click()
    dialog.get_by_role("button", name="Save and leave").click()
    expect(page.get_by_role("heading", name="Unsaved")).to_be_visible()
    assert Flow.objects.get(owner__username="mo").document["steps"][0]["id"] == "filter"

    # Closing the tab with changes gets the browser's own warning.
    page.go_back()
    page.get_by_role("button", name="Template text", exact=True).click()
    asked = []
    page.on("dialog", lambda d: (asked.append(d.type), d.accept()))
    watcher = page.context.new_page()
    page.close(run_before_unload=True)
    watcher.wait_for_timeout(500)
    assert asked == ["beforeunload"]


def test_a_second_tab_is_told_the_draft_changed_instead_of_overwriting_it(page):
    new_flow(page, "nia", "Two tabs")
    other = page.context.new_page()
    other.goto(page.url)
    expect(other.locator("#node-trigger")).to_be_visible()

    page.get_by_role("button", name="Filter", exact=True).click()
    page.get_by_role("button", name="Save draft").click()
    expect(page.locator("#builder-status")).to_contain_text("Draft saved")

    other.get_by_role("button", name="Template text", exact=True).click()
    other.get_by_role("button", name="Save draft").click()
    expect(other.get_by_text("Not saved: this draft was changed elsewhere")).to_be_visible()
    steps = Flow.objects.get(owner__username="nia").document["steps"]
    assert [s["id"] for s in steps] == ["filter"]
    other.get_by_role("button", name="Overwrite with my version").click()
    expect(other.locator("#builder-status")).to_contain_text("Draft saved")
    steps = Flow.objects.get(owner__username="nia").document["steps"]
    assert [s["id"] for s in steps] == ["template"]

    # The first tab is now behind: it reloads to get the other tab's version.
    page.get_by_role("button", name="Save draft").click()
    page.get_by_role("button", name="Reload the draft").click()
    expect(page.locator("#node-template")).to_be_visible()
    expect(page.locator("#node-filter")).to_have_count(0)


def test_a_python_node_keeps_one_code_editor_after_a_save_with_problems(page):
    new_flow(page, "ola", "One editor")
    page.get_by_role("button", name="Python code", exact=True).click()
    page.get_by_role("button", name="Template text", exact=True).click()
    page.locator("#node-python").click()
    expect(page.locator("#inspector .CodeMirror")).to_have_count(1)
    with page.expect_response("**/builder/node/"):
        page.get_by_role("button", name="Save draft").click()
    expect(page.locator("#node-template")).to_have_class(re.compile("has-errors"))
    page.wait_for_timeout(300)
    expect(page.locator("#inspector .CodeMirror")).to_have_count(1)
    expect(page.locator("#param-source")).to_be_hidden()

    # Ctrl+S saves from inside the code editor too.
    type_code(page, "def main(event, ctx):\n    return {'saved': True}\n")
    page.keyboard.press("Control+s")
    expect(page.locator("#dirty")).to_have_text("1 problem to fix")
    page.wait_for_timeout(500)
    expect(page.locator("#dirty")).to_have_text("1 problem to fix")
    source = Flow.objects.get(owner__username="ola").document["steps"][0]["config"]["source"]
    assert "'saved': True" in source


def test_the_canvas_works_from_the_keyboard_and_announces_the_selection(page):
    new_flow(page, "pat", "Keys")
    # The skip link reaches the canvas; Tab goes on to the nodes.
    page.locator("#flow-name").focus()
    page.keyboard.press("Shift+Tab")
    expect(page.get_by_role("link", name="Skip to the canvas")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#canvas-viewport")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("#node-trigger")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#canvas-live")).to_have_text("Selected the trigger (Manual).")

    # A block found by typing, added with Enter, connected with a checkbox.
    page.get_by_label("Search blocks").focus()
    page.keyboard.type("filter")
    page.keyboard.press("Enter")
    expect(page.locator("#node-filter")).to_be_focused()
    expect(page.locator("#canvas-live")).to_contain_text("Selected step filter (Filter)")
    page.get_by_label("Search blocks").fill("template")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Step template · Template text")).to_be_visible()
    page.get_by_label("the trigger", exact=True).focus()
    page.keyboard.press("Space")
    page.keyboard.press("Control+s")
    expect(page.locator("#builder-status")).to_contain_text("Draft saved")
    edges = Flow.objects.get(owner__username="pat").document["edges"]
    assert sorted(edges) == [
        ["filter", "out", "template"],
        ["trigger", "out", "filter"],
        ["trigger", "out", "template"],
    ]
    check_basics(page)


def test_after_a_test_run_each_node_shows_how_its_step_went(page):
    new_flow(page, "quin", "Statuses")
    document = messy_document()
    document["steps"] = [
        template_step("a"),
        {"id": "gate", "kind": "logic.if", "config": {"condition": "{{ event.go }}"}},
        template_step("b"),
        template_step("c"),
        {"id": "stop", "kind": "logic.filter", "config": {"condition": "{{ event.go }}"}},
        template_step("d"),
    ]
    document["edges"] = [
        ["trigger", "out", "a"],
        ["a", "out", "gate"],
        ["gate", "true", "b"],
        ["gate", "false", "c"],
        ["c", "out", "stop"],
        ["stop", "out", "d"],
    ]
    document["layout"] = {}
    Flow.objects.filter(owner__username="quin").update(document=document)
    page.reload()
    page.get_by_role("button", name="Arrange").click()
    page.get_by_role("button", name="Test run").click()
    page.get_by_label("Event (JSON, editable)").fill(json.dumps({"go": ""}))
    page.get_by_role("button", name="Run the draft").click()
    expect(page.locator("#test-output .run-status .badge")).to_have_text("Skipped")
    expect(page.locator("#node-a .node-run")).to_have_text("Succeeded")
    expect(page.locator("#node-gate .node-run")).to_have_text("Succeeded")
    # The branch not taken is skipped; the filter on the other one ended the run, so the step
    # after it never ran and shows nothing.
    expect(page.locator("#node-b .node-run")).to_have_text("Skipped")
    expect(page.locator("#node-c .node-run")).to_have_text("Succeeded")
    expect(page.locator("#node-d .node-run")).to_have_count(0)
    # Selecting a node shows what it received and gave in that run.
    page.locator("#node-a").click()
    last_run = page.locator("#inspector .node-last-run")
    expect(last_run).to_contain_text("In the last test run: succeeded")
    expect(last_run.locator("pre").last).to_contain_text('"text": "a"')
    # The statuses stay on the nodes when they are drawn again (after a move, here).
    page.locator("#node-a").focus()
    page.keyboard.press("ArrowDown")
    page.get_by_role("button", name="Arrange").click()
    expect(page.locator("#node-a .node-run")).to_have_text("Succeeded")
    page.get_by_role("button", name="Fit to view").click()
    screenshot(page, "builder-test-run")


def test_template_fields_complete_paths_from_the_last_test_run(page):
    new_flow(page, "rae", "Paths")
    document = messy_document()
    document["steps"] = [template_step("a"), template_step("b")]
    document["edges"] = [["trigger", "out", "a"], ["a", "out", "b"]]
    document["settings"] = {"greeting": "Hello"}
    document["layout"] = {}
    Flow.objects.filter(owner__username="rae").update(document=document)
    page.reload()
    page.get_by_role("button", name="Test run").click()
    page.get_by_label("Event (JSON, editable)").fill(json.dumps({"name": "Ada"}))
    page.get_by_role("button", name="Run the draft").click()
    expect(page.locator("#node-b .node-run")).to_have_text("Succeeded")

    page.locator("#node-b").click()
    field = page.locator("#param-template")
    field.fill("")
    field.press_sequentially("{{ ev")
    suggestions = page.get_by_role("listbox", name="Template paths")
    expect(suggestions.get_by_role("option")).to_have_count(2)
    expect(suggestions.get_by_role("option").last).to_have_text(
        re.compile(r'^event\.name\s*"Ada"$')
    )
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    expect(field).to_have_value("{{ event.name }}")
    expect(suggestions).to_be_hidden()

    field.press_sequentially(" {{ steps.a")
    expect(suggestions.get_by_role("option")).to_have_text([re.compile(r'steps\.a\.text\s*"a"')])
    page.keyboard.press("Tab")
    field.press_sequentially(" {{ set")
    expect(suggestions.get_by_role("option")).to_have_text(
        [re.compile(r'settings\.greeting\s*"Hello"')]
    )
    check_basics(page)
    screenshot(page, "builder-autocomplete")
    page.keyboard.press("Escape")
    expect(suggestions).to_be_hidden()
    expect(field).to_have_value("{{ event.name }} {{ steps.a.text }} {{ set")


def test_a_pinned_output_lets_later_test_runs_start_from_it(page):
    new_flow(page, "pia", "Pins")
    document = messy_document()
    document["steps"] = [template_step("a"), template_step("b")]
    document["steps"][1]["config"]["template"] = "after {{ steps.a.text }}"
    document["edges"] = [["trigger", "out", "a"], ["a", "out", "b"]]
    document["layout"] = {}
    Flow.objects.filter(owner__username="pia").update(document=document)
    page.reload()
    page.get_by_role("button", name="Test run").click()
    page.get_by_role("button", name="Run the draft").click()
    expect(page.locator("#node-a .node-run")).to_have_text("Succeeded")
    page.locator("#node-a").click()
    page.get_by_role("button", name="Pin this output").click()
    expect(page.locator("#node-a .node-pin")).to_have_text("Pinned")
    expect(page.locator("#inspector .node-pin-bar")).to_contain_text("Pinned: test runs use")
    screenshot(page, "builder-pinned")

    # Step a now says something else, but the pinned output is what step b gets.
    page.locator("#param-template").fill("changed")
    page.get_by_role("button", name="Test run").click()
    page.get_by_role("button", name="Run the draft").click()
    expect(page.locator("#test-output .run-status .badge")).to_have_text("Succeeded")
    expect(page.locator("#test-output .logs")).to_contain_text(
        "pinned sample data used instead of running"
    )
    expect(page.locator("#test-output")).to_contain_text('"text": "after a"')
    assert Flow.objects.get(owner__username="pia").document["pinned"] == {
        "a": {"output": {"text": "a"}, "port": "out"}
    }
    # Unpinning (undoable like any change) lets the step run again.
    page.locator("#node-a").click()
    page.get_by_role("button", name="Unpin").click()
    expect(page.locator("#node-a .node-pin")).to_have_count(0)
    page.keyboard.press("Control+z")
    expect(page.locator("#node-a .node-pin")).to_have_text("Pinned")
