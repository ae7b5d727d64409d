"""llm.chat through the openai package against a fake OpenAI-compatible server."""

from __future__ import annotations

import pytest

from flows.capabilities import CapabilityError
from integrations.services.llm import TRUNCATION_NOTE, trim_to_budget
from tests.fakes.llm import FakeLLM
from tests.integrations.support import call


@pytest.fixture
def chat_ctx(llm, recorder):
    return recorder.context(secrets={}, config={"base_url": llm.base_url, "model": "llama3"})


def test_chat_returns_the_answer_model_and_usage_and_records_usage(llm, chat_ctx, recorder):
    llm.replies.append("Two potential problems.")
    result = call(
        "llm.chat",
        chat_ctx,
        {
            "system": "You review code.",
            "messages": [{"role": "user", "content": "Review this diff please"}],
            "temperature": 0.2,
            "max_tokens": 300,
        },
    )
    usage = {"prompt_tokens": 10, "completion_tokens": 6, "total_tokens": 16}
    assert result == {
        "content": "Two potential problems.",
        "model": "llama3",
        "usage": usage,
        "finish_reason": "stop",
        "truncated": False,
    }
    assert recorder.usage == [usage]
    assert llm.chats == [
        {
            "model": "llama3",
            "messages": [
                {"role": "system", "content": "You review code."},
                {"role": "user", "content": "Review this diff please"},
            ],
            "temperature": 0.2,
            "max_tokens": 300,
        }
    ]


def test_a_prompt_is_the_last_user_message_and_model_may_be_chosen(llm, chat_ctx):
    result = call(
        "llm.chat",
        chat_ctx,
        {
            "model": "qwen2.5-coder",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
            ],
            "prompt": "and now?",
        },
    )
    assert result["content"] == "echo: and now?"
    assert result["model"] == "qwen2.5-coder"
    assert [m["content"] for m in llm.chats[0]["messages"]] == ["hi", "hello", "and now?"]


def test_the_api_key_is_sent_as_a_bearer_token(recorder):
    with FakeLLM(api_key="sk-test-abcdefghijklmnop1234") as server:
        ctx = recorder.context(
            secrets={"api_key": "sk-test-abcdefghijklmnop1234"},
            config={"base_url": server.base_url, "model": "llama3"},
        )
        assert call("llm.chat", ctx, {"prompt": "hi"})["content"] == "echo: hi"
        assert server.requests[-1].headers["authorization"] == "Bearer sk-test-abcdefghijklmnop1234"


def test_a_wrong_api_key_is_a_permanent_error_in_words(recorder):
    with FakeLLM(api_key="sk-right-key-0000000000") as server:
        ctx = recorder.context(
            secrets={"api_key": "sk-wrong-key-1111111111"},
            config={"base_url": server.base_url, "model": "llama3"},
        )
        with pytest.raises(CapabilityError) as error:
            call("llm.chat", ctx, {"prompt": "hi"})
    assert error.value.message == (
        "The LLM server at 127.0.0.1 says the API key is missing or invalid: Incorrect API key "
        "provided. You can find your API key in your account."
    )
    assert error.value.retryable is False


def test_an_unknown_model_says_so(chat_ctx):
    with pytest.raises(CapabilityError) as error:
        call("llm.chat", chat_ctx, {"prompt": "hi", "model": "gpt-9"})
    assert error.value.message == (
        "The LLM server at 127.0.0.1 says: The model `gpt-9` does not exist or you do not have "
        "access to it."
    )


def test_a_base_url_without_v1_is_pointed_out(llm, recorder):
    ctx = recorder.context(config={"base_url": llm.url, "model": "llama3"})
    with pytest.raises(CapabilityError) as error:
        call("llm.chat", ctx, {"prompt": "hi"})
    assert error.value.message == (
        "The LLM server at 127.0.0.1 has no /chat/completions (404): check the base URL, which "
        "usually ends in /v1."
    )


def test_rate_limits_are_waited_out_as_retry_after_asks(llm, chat_ctx, recorder):
    llm.rate_limit_next(retry_after=0)
    assert call("llm.chat", chat_ctx, {"prompt": "hi"})["content"] == "echo: hi"
    assert recorder.logs == [
        (
            "warning",
            "The LLM server at 127.0.0.1 is rate limiting these requests; it asks to wait "
            "0 s. Retrying in 0.0 s (attempt 2 of 3).",
        )
    ]
    assert len(llm.chats) == 2


def test_a_server_that_cannot_be_reached_is_a_retryable_error(recorder):
    ctx = recorder.context(config={"base_url": "http://127.0.0.1:9/v1", "model": "llama3"})
    with pytest.raises(CapabilityError) as error:
        call("llm.chat", ctx, {"prompt": "hi"})
    assert error.value.message == (
        "The LLM server at 127.0.0.1 cannot be reached: [Errno 111] Connection refused."
    )
    assert error.value.retryable is True


def test_model_limits_of_the_binding_are_enforced(chat_ctx):
    chat_ctx.limits = {"model": "llama3"}
    with pytest.raises(CapabilityError) as error:
        call("llm.chat", chat_ctx, {"prompt": "hi", "model": "qwen2.5-coder"})
    assert error.value.message == "This step may use only the model llama3, not qwen2.5-coder."


def test_payload_problems_are_explained(chat_ctx):
    with pytest.raises(CapabilityError) as error:
        call("llm.chat", chat_ctx, {"system": "be brief"})
    assert error.value.message == "llm.chat needs a 'prompt' or 'messages' with a user message."
    with pytest.raises(CapabilityError) as error:
        call("llm.chat", chat_ctx, {"messages": [{"role": "robot", "content": "x"}]})
    assert error.value.message == (
        "llm.chat: message 1 must be {role: system|user|assistant, content: text}."
    )
    chat_ctx.connection_config = {"base_url": chat_ctx.connection_config["base_url"]}
    with pytest.raises(CapabilityError) as error:
        call("llm.chat", chat_ctx, {"prompt": "hi"})
    assert error.value.message == "llm.chat needs a 'model', or a default model in the connection."


def test_long_prompts_are_trimmed_to_the_connection_context_size(llm, chat_ctx, recorder):
    chat_ctx.connection_config["context_size"] = 1000
    diff = "".join(f"+ line {i:05d} of the change\n" for i in range(1000))  # 27,000 characters
    result = call("llm.chat", chat_ctx, {"system": "Review.", "prompt": diff, "max_tokens": 200})
    assert result["truncated"] is True
    sent = llm.chats[0]["messages"][-1]["content"]
    assert sent.endswith("of the change" + TRUNCATION_NOTE)
    # context 1000 - 200 for the answer - 8 a message for 2 messages - 2 for the system prompt
    assert len(sent) <= 782 * 4
    assert recorder.logs == [
        (
            "warning",
            "Trimmed the last message from about 6750 to 782 tokens to fit the model's "
            "context of 1000 tokens.",
        )
    ]


def test_a_prompt_the_server_finds_too_long_is_reported_with_advice(recorder):
    with FakeLLM(models=["tiny"], context_size=50) as server:
        ctx = recorder.context(config={"base_url": server.base_url, "model": "tiny"})
        with pytest.raises(CapabilityError) as error:
            call("llm.chat", ctx, {"prompt": "x" * 400})
    assert error.value.message == (
        "The LLM server at 127.0.0.1 says the prompt does not fit the model's context: This "
        "model's maximum context length is 50 tokens. However, your messages resulted in 100 "
        "tokens. Set the connection's context size so prompts are trimmed to fit."
    )


def test_trim_to_budget_keeps_short_text_and_cuts_long_text_at_a_line():
    assert trim_to_budget("short", 10) == ("short", False)
    text = "\n".join(f"line {i}" for i in range(100))  # 689 characters
    trimmed, cut = trim_to_budget(text, 50)
    assert cut is True
    assert len(trimmed) <= 200
    assert trimmed.endswith(TRUNCATION_NOTE)
    assert trimmed[: -len(TRUNCATION_NOTE)] == text[: len(trimmed) - len(TRUNCATION_NOTE)]
    assert trimmed[: -len(TRUNCATION_NOTE)].split("\n")[-1] in {f"line {i}" for i in range(100)}
    assert trim_to_budget("abcdef", 1) == ("abcd", True)
    assert trim_to_budget("abc", 0) == ("", True)


@pytest.mark.parametrize(
    ("body", "headers", "described"),
    [
        (
            b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            {"Content-Type": "text/html"},
            "an HTML page titled “502 Bad Gateway”",
        ),
        (b"", {"Content-Type": "application/json"}, "an empty body (application/json)"),
        (
            b"upstream connect error",
            {"Content-Type": "application/json"},
            "text that is not JSON (application/json): “upstream connect error”",
        ),
        (
            b'{"object": "list", "data": []}',
            {"Content-Type": "application/json"},
            'JSON without a message in choices: “{"object": "list", "data": []}”',
        ),
        (
            b'{"choices": [{"index": 0, "message": null}]}',
            {"Content-Type": "application/json"},
            'JSON without a message in choices: “{"choices": [{"index": 0, "message": null}]}”',
        ),
    ],
)
def test_a_malformed_answer_is_a_retryable_error_that_says_what_came_back(
    llm, chat_ctx, body, headers, described
):
    llm.fail_next(200, body, headers=headers)
    with pytest.raises(CapabilityError) as error:
        call("llm.chat", chat_ctx, {"prompt": "hi"})
    assert error.value.message == (
        f"The LLM server at 127.0.0.1 gave an answer that is not a chat completion for model "
        f"llama3: {described}."
    )
    assert error.value.retryable is True
