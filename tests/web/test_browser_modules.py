"""A Wasm step in a real browser: a module built with the Rust SDK is uploaded on the node, its
details shown, its capabilities granted with one click, and a test run gives its output; a file
that breaks the ABI is refused with the reason, and a module in use cannot be deleted."""

import json

from playwright.sync_api import expect
from wasmtime import wat2wasm

from flows.models import Flow

from .conftest import screenshot
from .test_browser import check_basics, sign_up


def test_upload_grant_and_run_a_rust_module_in_the_builder(page, sdk_modules, tmp_path):
    module = tmp_path / "word_count.wasm"
    module.write_bytes(sdk_modules["rust_word_count"])
    broken = tmp_path / "broken.wasm"
    broken.write_bytes(wat2wasm('(module (memory (export "memory") 1))'))

    sign_up(page, "wasm-author")
    page.get_by_label("Name of the new flow").fill("Word counter")
    page.get_by_role("button", name="Create flow").click()
    # The canvas drew its trigger: the builder's script is running, so the palette adds blocks.
    expect(page.locator("#node-trigger")).to_be_visible()
    page.get_by_role("button", name="Wasm module").click()
    expect(page.get_by_role("heading", name="Step wasm · Wasm module")).to_be_visible()

    page.get_by_label("Upload a module file (.wasm)").set_input_files(str(broken))
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.locator("#upload-result")).to_contain_text(
        "broken.wasm was not uploaded: the module does not export a function 'alloc'"
    )

    page.get_by_label("Upload a module file (.wasm)").set_input_files(str(module))
    page.get_by_role("button", name="Upload", exact=True).click()
    details = page.locator("#upload-result")
    expect(details).to_contain_text("Uploaded word_count.wasm: it follows the Flowbuilder ABI.")
    expect(details).to_contain_text("flowbuilder.log, flowbuilder.call")
    expect(details).to_contain_text("Capabilities it may call")
    digest = Flow.objects.get(name="Word counter").owner.artifacts.get().digest
    expect(details.locator("code.digest")).to_have_text(digest)
    expect(page.get_by_label("Module digest")).to_have_value(digest)

    page.get_by_role("button", name="Grant kv.get, kv.set to this step").click()
    expect(page.locator('[data-grant][value="kv.get"]')).to_be_checked()
    expect(page.locator('[data-grant][value="kv.set"]')).to_be_checked()
    expect(page.locator('[data-grant][value="llm.chat"]')).not_to_be_checked()
    # The form came back with the module still shown.
    expect(page.locator("#upload-result code.digest")).to_have_text(digest)
    check_basics(page)
    page.locator("#upload-result").scroll_into_view_if_needed()
    screenshot(page, "builder-wasm-module")

    page.get_by_role("button", name="Test run").click()
    page.get_by_label("Event (JSON, editable)").fill(json.dumps({"text": "hello wasm world"}))
    page.get_by_role("button", name="Run the draft").click()
    expect(page.locator("#test-output .run-status .badge")).to_have_text("Succeeded")
    expect(page.locator("#test-output").get_by_text("counted 3 words")).to_be_visible()
    expect(page.locator("#test-output")).to_contain_text('"shout": "HELLO WASM WORLD"')

    page.get_by_role("button", name="Save draft").click()
    expect(page.get_by_text("ready to deploy.")).to_be_visible()
    page.goto("/modules/")
    expect(page.get_by_role("link", name="Word counter")).to_be_visible()
    page.get_by_role("button", name="Delete word_count.wasm").click()
    expect(page.locator(".messages")).to_contain_text(
        "Not deleted: word_count.wasm is used by “Word counter”"
    )
    check_basics(page)
    screenshot(page, "modules")
