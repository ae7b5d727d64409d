"""The agent block: a model that calls the tools its step chose, within limits, and answers."""

from __future__ import annotations

import json

import pytest

from flows.compiler import CompileError, compile_document
from flows.engine.runs import start_run
from flows.models import KVEntry, Run, StepRun
from tests.agents.conftest import REPO, agent_document
from tests.fakes.llm import calls

pytestmark = pytest.mark.django_db

READ_FILE = {"capability": "github.file.read", "fixed": {"repo": REPO}}


def run_once(flow, event=None) -> tuple[Run, StepRun]:
    run, _ = start_run(flow, trigger="manual", event=event or {})
    run.refresh_from_db()
    return run, StepRun.objects.filter(run=run, step_id="agent").order_by("-id").first()


def tool_entries(step: StepRun) -> list[dict]:
    return [e for e in step.trace if e["kind"] == "tool"]


def test_the_agent_reads_a_file_with_its_tool_and_answers(
    agent_flow, llm, github, github_connection
):
    github.add_file(REPO, "README.md", "Install with `make run`.")
    llm.replies += [calls(("github_file_read", {"path": "README.md"})), "Run `make run`."]
    flow = agent_flow(
        {"prompt": "How do I install it?", "tools": [READ_FILE]},
        connections={"github": github_connection},
    )

    run, step = run_once(flow)

    assert run.status == "succeeded", run.error
    assert run.output["answer"] == "Run `make run`."
    assert run.output["turns"] == 2 and run.output["tool_calls"] == 1
    # The model was offered the tool with the schema of the capability's declaration, without
    # the field the flow fixed.
    offered = llm.chats[0]["tools"]
    assert [t["function"]["name"] for t in offered] == ["github_file_read"]
    schema = offered[0]["function"]["parameters"]
    assert set(schema["properties"]) == {"path", "ref"} and schema["required"] == ["path"]
    # The tool's answer went back to the model as the answer to its call.
    answered = llm.chats[1]["messages"][-1]
    assert answered["role"] == "tool" and "make run" in answered["content"]
    assert [(e["kind"], e.get("name"), e.get("status")) for e in step.trace] == [
        ("model", None, None),
        ("tool", "github_file_read", "ok"),
        ("model", None, None),
    ]
    assert step.trace[1]["result"]["content"] == "Install with `make run`."
    assert step.tokens["total_tokens"] == run.output["tokens"]["total_tokens"] > 0


def test_parallel_tool_calls_of_one_turn_run_at_the_same_time(
    agent_flow, llm, github, github_connection
):
    for name in ("a.py", "b.py", "c.py"):
        github.add_file(REPO, name, f"# {name}")
    github.latency = 0.3
    llm.replies += [
        calls(*[("github_file_read", {"path": p}) for p in ("a.py", "b.py", "c.py")]),
        "Three files.",
    ]
    flow = agent_flow(
        {"prompt": "Read them.", "tools": [READ_FILE]}, connections={"github": github_connection}
    )

    run, step = run_once(flow)

    assert run.status == "succeeded", run.error
    assert github.max_in_flight == 3
    # Each answer went back under its own call's id, in the order of the calls.
    asked = llm.chats[1]["messages"]
    ids = [c["id"] for c in asked[-4]["tool_calls"]]
    assert [m["tool_call_id"] for m in asked[-3:]] == ids
    assert ["# a.py" in asked[-3]["content"], "# c.py" in asked[-1]["content"]] == [True, True]
    assert len(tool_entries(step)) == 3


def test_a_call_to_a_tool_that_was_not_offered_is_refused_and_nothing_is_done(
    agent_flow, llm, github, github_connection
):
    llm.replies += [
        calls(("github_comment_create", {"repo": REPO, "number": 1, "body": "spam"})),
        "I can only read files.",
    ]
    flow = agent_flow(
        {"prompt": "Comment on #1.", "tools": [READ_FILE]},
        connections={"github": github_connection},
    )

    run, step = run_once(flow)

    assert run.status == "succeeded", run.error
    assert github.requests_to("POST") == []
    told = llm.chats[1]["messages"][-1]["content"]
    assert told == (
        "There is no tool named 'github_comment_create'. The tools you may call are: "
        "github_file_read."
    )
    [entry] = tool_entries(step)
    assert entry["status"] == "refused" and entry["name"] == "github_comment_create"
    warnings = run.log_lines.filter(level="warning").values_list("message", flat=True)
    assert "the model called 'github_comment_create', which is not one of its tools" in warnings


def test_malformed_arguments_go_back_to_the_model_which_calls_again(
    agent_flow, llm, github, github_connection
):
    github.add_file(REPO, "README.md", "Hello")
    llm.replies += [
        calls(("github_file_read", '{"path": "README.md"')),
        calls(("github_file_read", '["README.md"]')),
        calls(("github_file_read", {"path": "README.md", "colour": "red"})),
        calls(("github_file_read", {"path": "README.md"})),
        "It says hello.",
    ]
    flow = agent_flow(
        {"prompt": "What does it say?", "tools": [READ_FILE]},
        connections={"github": github_connection},
    )

    run, step = run_once(flow)

    assert run.status == "succeeded", run.error
    told = [chat["messages"][-1]["content"] for chat in llm.chats[1:4]]
    assert told[0].startswith("The arguments of github_file_read are not a JSON object (")
    assert told[1] == (
        "The arguments of github_file_read are a JSON list, not an object. Call it again with "
        "a JSON object of its parameters."
    )
    # Arguments the declaration does not know are refused by the capability's own validation.
    assert told[2] == (
        "The tool failed: github.file.read does not take 'colour'; its fields are repo, path, ref."
    )
    assert [e["status"] for e in tool_entries(step)] == ["error", "error", "error", "ok"]
    assert len(github.requests_to("GET", r"/repos/.*/contents/.*")) == 1


def forever(body: dict):
    return calls(("github_file_read", {"path": "README.md"}))


@pytest.mark.parametrize(
    ("limits", "error"),
    [
        (
            {"max_iterations": 4},
            "step 'agent': the agent made 4 model turns without a final answer: its limit is 4 "
            "(max iterations)",
        ),
        (
            {"max_tool_calls": 2},
            "step 'agent': the model asked for tool call 3; the limit is 2 (max tool calls)",
        ),
    ],
)
def test_a_model_that_never_stops_calling_tools_is_stopped_by_its_limits(
    agent_flow, llm, github, github_connection, limits, error
):
    github.add_file(REPO, "README.md", "Hello")
    llm.replies += [forever] * 50
    flow = agent_flow(
        {"prompt": "Loop.", "tools": [READ_FILE], **limits},
        connections={"github": github_connection},
    )

    run, step = run_once(flow)

    assert run.status == "failed" and run.error == error
    # Stopped, not retried: a new attempt would only ask the model all over again.
    assert StepRun.objects.filter(run=run).count() == 1
    assert step.trace, "what happened before the limit stays on record"


def test_the_token_budget_stops_the_agent_before_the_next_model_turn(
    agent_flow, llm, github, github_connection
):
    github.add_file(REPO, "README.md", "x" * 4000)
    llm.replies += [forever] * 10
    flow = agent_flow(
        {"prompt": "Loop.", "tools": [READ_FILE], "token_budget": 1500},
        connections={"github": github_connection},
    )

    run, step = run_once(flow)

    assert run.status == "failed"
    used = sum(e["tokens"]["total_tokens"] for e in step.trace if e["kind"] == "model")
    assert run.error == (
        f"step 'agent': the agent used {used:,} tokens, its budget is 1,500: it stopped before "
        "asking the model again"
    )


def test_the_time_budget_stops_the_agent(agent_flow, llm, github, github_connection):
    github.add_file(REPO, "README.md", "Hello")
    llm.latency = 0.6
    llm.replies += [forever] * 10
    flow = agent_flow(
        {"prompt": "Loop.", "tools": [READ_FILE], "time_budget_s": 1},
        connections={"github": github_connection},
    )

    run, _ = run_once(flow)

    assert run.status == "failed"
    assert run.error.startswith("step 'agent': the agent ran out of its time budget of 1 s after")


def test_a_write_tool_marked_ask_first_returns_a_proposal_instead_of_acting(
    agent_flow, llm, github, github_connection
):
    reply = {"repo": REPO, "number": 3, "body": "Closing as fixed."}
    llm.replies += [calls(("github_issue_reply", reply)), "I proposed a reply."]
    flow = agent_flow(
        {
            "prompt": "Answer issue 3.",
            "tools": [{"capability": "github.issue.reply", "ask_first": True}],
        },
        connections={"github": github_connection},
    )

    run, step = run_once(flow)

    assert run.status == "succeeded", run.error
    assert github.requests_to("POST") == []
    assert run.output["proposals"] == [
        {"tool": "github_issue_reply", "capability": "github.issue.reply", "arguments": reply}
    ]
    assert tool_entries(step)[0]["status"] == "proposed"
    assert "needs a person's approval" in llm.chats[1]["messages"][-1]["content"]
    assert (
        "A person approves this action first"
        in (llm.chats[0]["tools"][0]["function"]["description"])
    )


SCHEMA = {
    "type": "object",
    "properties": {"label": {"enum": ["bug", "question"]}, "confidence": {"type": "number"}},
    "required": ["label", "confidence"],
}


def test_an_answer_off_the_output_schema_gets_one_repair_round(agent_flow, llm):
    llm.replies += ['{"label": "feature"}', '```json\n{"label": "bug", "confidence": 0.9}\n```']
    flow = agent_flow({"prompt": "Classify: it crashes.", "output_schema": SCHEMA})

    run, step = run_once(flow)

    assert run.status == "succeeded", run.error
    assert run.output["data"] == {"label": "bug", "confidence": 0.9}
    repair = llm.chats[1]["messages"][-1]["content"]
    assert repair.startswith("Your answer does not match the required JSON schema: ")
    assert "tools" not in llm.chats[1]
    assert [e.get("purpose") for e in step.trace] == ["answer", "repair"]


def test_an_answer_still_off_the_schema_after_the_repair_fails_clearly(agent_flow, llm):
    llm.replies += ["It is a bug.", '{"label": "bug"}']
    flow = agent_flow({"prompt": "Classify: it crashes.", "output_schema": SCHEMA})

    run, _ = run_once(flow)

    assert run.status == "failed"
    assert run.error == (
        "step 'agent': the agent's answer does not match the output schema, also after one "
        "repair round: 'confidence' is a required property"
    )


def test_a_model_without_tool_support_fails_at_once_with_a_clear_error(
    agent_flow, llm, github, github_connection
):
    llm.no_tools.add("gemma")
    flow = agent_flow(
        {"prompt": "Read the README.", "tools": [READ_FILE], "model": "gemma"},
        connections={"github": github_connection},
    )

    run, _ = run_once(flow)

    assert run.status == "failed"
    assert run.error.startswith(
        "step 'agent': The LLM server at 127.0.0.1 says the model cannot call tools: "
        "registry.ollama.ai/library/gemma:latest does not support tools. An agent needs a "
        "model with tool calling"
    )
    assert len(llm.chats) == 1, "no retry and no loop"


def test_the_memory_key_keeps_the_conversation_and_summarises_the_oldest_turns(agent_flow, llm):
    flow = agent_flow(
        {
            "prompt": "{{ event.text }}",
            "memory_key": "chat-{{ event.chat }}",
            "memory_tokens": 120,
        }
    )
    llm.replies += ["Hello Ada."]
    run_once(flow, {"chat": 7, "text": "I am Ada."})
    llm.replies += ["You are Ada."]
    run_once(flow, {"chat": 7, "text": "Who am I?"})

    # The second run saw the first one's exchange before its own message.
    assert [m["content"] for m in llm.chats[1]["messages"]] == [
        "I am Ada.",
        "Hello Ada.",
        "Who am I?",
    ]
    # Another key is another conversation.
    llm.replies += ["Nice to meet you."]
    run_once(flow, {"chat": 8, "text": "Hi."})
    assert [m["content"] for m in llm.chats[2]["messages"]] == ["Hi."]

    # Past its token budget the oldest turns become a summary written by the model.
    llm.replies += ["x" * 500, "SUMMARY: Ada introduced herself."]
    run, step = run_once(flow, {"chat": 7, "text": "Tell me a long story."})
    assert run.status == "succeeded", run.error
    assert step.trace[-1]["purpose"] == "summary"
    assert "I am Ada." in llm.chats[-1]["messages"][0]["content"]
    stored = KVEntry.objects.get(flow=flow, key="agent-memory:chat-7").value
    assert stored["summary"] == "SUMMARY: Ada introduced herself."
    assert [t["content"] for t in stored["turns"]] == ["Tell me a long story.", "x" * 500]
    llm.replies += ["Yes.", "SUMMARY: Ada asked for a story."]
    run_once(flow, {"chat": 7, "text": "Do you remember me?"})
    # (chats[-1] folded the long story into the summary in turn)
    assert llm.chats[-2]["messages"][0] == {
        "role": "system",
        "content": "Summary of the earlier conversation:\nSUMMARY: Ada introduced herself.",
    }


def test_notes_saved_in_one_run_are_recalled_in_the_next(agent_flow, llm):
    flow = agent_flow({"prompt": "{{ event.text }}", "tools": [{"notes": True}]})
    llm.replies += [
        calls(("notes_save", {"name": "release day", "text": "Fridays"})),
        "Noted.",
    ]
    run_once(flow, {"text": "We release on Fridays."})
    llm.replies += [calls(("notes_read", {})), "On Fridays."]

    run, step = run_once(flow, {"text": "When do we release?"})

    assert run.output["answer"] == "On Fridays."
    assert json.loads(llm.chats[-1]["messages"][-1]["content"]) == {
        "notes": {"release day": "Fridays"}
    }
    assert KVEntry.objects.get(flow=flow, key="agent-notes").value == {"release day": "Fridays"}


WORDS = """
def main(args, ctx):
    ctx.log("counting")
    return {"words": len(args["text"].split()), "stored": ctx.call("kv.get", {"key": "k"})}
"""


def test_a_python_code_tool_runs_in_the_sandbox_with_its_own_grants(agent_flow, llm):
    tool = {
        "code": WORDS,
        "name": "count_words",
        "description": "Counts the words of a text.",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
        "grants": ["kv.get"],
    }
    llm.replies += [calls(("count_words", {"text": "one two three"})), "Three words."]
    flow = agent_flow({"prompt": "Count.", "tools": [tool]})

    run, step = run_once(flow)

    assert run.status == "succeeded", run.error
    assert tool_entries(step)[0]["result"] == {"words": 3, "stored": None}
    assert run.log_lines.filter(message="counting").exists()


def test_a_code_tool_cannot_call_what_it_was_not_granted(agent_flow, llm):
    tool = {
        "code": WORDS,
        "name": "count_words",
        "description": "Counts the words of a text.",
        "grants": [],
    }
    llm.replies += [calls(("count_words", {"text": "a b"})), "It failed."]
    flow = agent_flow({"prompt": "Count.", "tools": [tool]})

    run, step = run_once(flow)

    [entry] = tool_entries(step)
    assert entry["status"] == "error" and "capability 'kv.get' not granted" in entry["error"]


def test_another_deployed_flow_is_a_tool_described_by_its_description(
    user, make_helper_flow, agent_flow, llm
):
    helper = make_helper_flow()
    llm.replies += [calls(("flow_greeter", {"name": "Ada"})), "It says Hello Ada."]
    flow = agent_flow({"prompt": "Greet Ada.", "tools": [{"flow": helper.pk}]})

    run, step = run_once(flow)

    assert run.status == "succeeded", run.error
    function = llm.chats[0]["tools"][0]["function"]
    assert function["description"] == "Runs the flow 'Greeter'. Says hello to a name."
    assert function["parameters"]["properties"] == {"name": {"type": "string"}}
    assert tool_entries(step)[0]["result"] == {"text": "Hello Ada"}
    child = Run.objects.get(flow=helper)
    assert child.parent_run_id == run.pk and child.event == {"name": "Ada"}


def test_secrets_are_redacted_from_the_trace_and_the_output(agent_flow, llm):
    secret = "sk-live-0123456789abcdef"
    flow = agent_flow(
        {"prompt": "Use {{ settings.token }}"},
        settings={"token": {"value": secret, "secret": True}},
    )

    run, step = run_once(flow)

    assert run.status == "succeeded", run.error
    assert secret not in json.dumps(step.trace) and secret not in json.dumps(run.output)
    assert "[redacted]" in step.trace[0]["content"]


def problems(document, user) -> list[tuple[str, str]]:
    with pytest.raises(CompileError) as caught:
        compile_document(document, user)
    return [(e.field, str(e).removeprefix("step 'agent': ")) for e in caught.value.errors]


def test_deploying_checks_every_tool(user, llm_connection, github_connection):
    tools = [
        {"capability": "github.nothing"},
        {"capability": "github.file.read", "ask_first": True, "fixed": {"colour": "red"}},
        {"flow": 999},
        {"code": "def main(args, ctx):\n    return (", "name": "bad name!", "grants": ["x.y"]},
        {"capability": "llm.chat"},
        {"notes": True, "flow": 1},
    ]
    document = agent_document(
        {
            "prompt": "Hi",
            "tools": tools,
            "output_schema": {"type": "nonsense"},
            "max_iterations": 0,
        },
        {"llm": llm_connection.pk, "github": github_connection.pk},
    )
    found = problems(document, user)
    assert ("max_iterations", "'max_iterations' must be 1 to 100") in found
    assert any(f == "output_schema" and "is not a valid JSON schema" in m for f, m in found)
    messages = [m for f, m in found if f == "tools"]
    assert "tool 1: there is no capability 'github.nothing' an agent can call" in messages
    assert "tool 2: github.file.read has no field 'colour' to fix" in messages
    assert (
        "tool 2: github.file.read only reads; 'ask first' is for tools that change things"
        in messages
    )
    assert "tool 3: flow 999 is not one of your flows" in messages
    assert any(m.startswith("tool 4: a code tool needs a 'name'") for m in messages)
    assert "tool 4: unknown capability 'x.y' in 'grants'" in messages
    assert any(m.startswith("tool 4: ") and "line 2" in m for m in messages)
    assert "tool 5: there is no capability 'llm.chat' an agent can call" in messages
    assert "tool 6 must be an object with one of capability, flow, code or notes" in messages


def test_a_tool_needs_a_connection_of_its_service(user, llm_connection):
    document = agent_document({"prompt": "Hi", "tools": [READ_FILE]}, {"llm": llm_connection.pk})
    assert problems(document, user) == [
        (
            "kind",
            "capability 'github.file.read' needs a GitHub connection: choose one in the step's "
            "Connection picker",
        )
    ]


def test_the_time_budget_is_the_steps_time_limit(user, llm_connection):
    document = agent_document({"prompt": "Hi", "time_budget_s": 300}, {"llm": llm_connection.pk})
    plan = compile_document(document, user)
    assert plan["steps"][0]["limits"] == {"timeout_s": 310}
    assert plan["steps"][0]["grants"] == ["llm.chat"]
