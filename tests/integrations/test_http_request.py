"""http.request: allowlist, private-address guard, size cap, secret headers, answers as data."""

from __future__ import annotations

import pytest

from flows.capabilities import CapabilityError
from tests.integrations.support import call


def test_get_returns_status_headers_body_and_parsed_json(website, recorder):
    ctx = recorder.context()
    result = call("http.request", ctx, {"url": f"{website.url}/echo?q=1"})
    assert result["status"] == 200
    assert result["headers"]["content-type"] == "application/json; charset=utf-8"
    assert result["json"]["method"] == "GET"
    assert result["json"]["query"] == {"q": "1"}
    assert result["body"].startswith('{"method": "GET"')


def test_post_json_and_text_bodies_with_headers(website, recorder):
    ctx = recorder.context()
    sent = call(
        "http.request",
        ctx,
        {
            "method": "post",
            "url": f"{website.url}/echo",
            "json": {"a": 1},
            "headers": {"X-Trace": "abc"},
        },
    )["json"]
    assert (sent["method"], sent["body"]) == ("POST", '{"a":1}')
    assert sent["headers"]["x-trace"] == "abc"
    assert sent["headers"]["content-type"] == "application/json"
    sent = call(
        "http.request", ctx, {"method": "PUT", "url": f"{website.url}/echo", "body": "plain"}
    )["json"]
    assert (sent["method"], sent["body"]) == ("PUT", "plain")


def test_error_statuses_come_back_as_data(website, recorder):
    result = call("http.request", recorder.context(), {"url": f"{website.url}/status/418"})
    assert result["status"] == 418
    assert result["json"] == {"error": "status 418 as asked"}


def test_redirects_are_returned_not_followed(website, recorder):
    result = call("http.request", recorder.context(), {"url": f"{website.url}/redirect"})
    assert result["status"] == 302
    assert result["headers"]["location"] == "/echo"
    assert len(website.requests) == 1


def test_text_is_decoded_with_its_charset(website, recorder):
    result = call("http.request", recorder.context(), {"url": f"{website.url}/text"})
    assert result["body"] == "caf\u00e9 ol\u00e9"
    assert "json" not in result


def test_the_flows_host_allowlist_is_enforced(website, recorder):
    ctx = recorder.context(limits={"allowed_hosts": ["api.example.com", "*.example.org"]})
    with pytest.raises(CapabilityError) as error:
        call("http.request", ctx, {"url": f"{website.url}/echo"})
    assert error.value.message == (
        "This flow may send HTTP requests only to these hosts: api.example.com, *.example.org; "
        "127.0.0.1 is not one of them."
    )
    assert website.requests == []
    ctx.limits = {"allowed_hosts": [f"127.0.0.1:{website.url.rsplit(':', 1)[1]}"]}
    assert call("http.request", ctx, {"url": f"{website.url}/echo"})["status"] == 200
    ctx.limits = {"allowed_hosts": ["127.0.0.1:1"]}
    with pytest.raises(CapabilityError):
        call("http.request", ctx, {"url": f"{website.url}/echo"})


@pytest.mark.parametrize(
    "host,address",
    [
        ("127.0.0.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("10.1.2.3", "10.1.2.3"),
        ("[::ffff:192.168.1.1]", "::ffff:192.168.1.1"),
        # IPv6 forms that carry a private IPv4 address: compatible, NAT64, 6to4, Teredo.
        ("[::a00:1]", "::10.0.0.1"),
        ("[64:ff9b::a00:1]", "64:ff9b::a00:1"),
        ("[2002:a00:1::1]", "2002:a00:1::1"),
        ("[2001:0:4136:e378:8000:63bf:80ff:fffe]", "2001:0:4136:e378:8000:63bf:80ff:fffe"),
    ],
)
def test_private_loopback_and_link_local_addresses_are_refused(recorder, settings, host, address):
    settings.FLOWS_ALLOW_PRIVATE_HOSTS = False
    with pytest.raises(CapabilityError) as error:
        call("http.request", recorder.context(), {"url": f"http://{host}:8000/x"})
    bare = host.strip("[]")
    assert error.value.message == (
        f"{bare} cannot be reached: {bare} resolves to {address}, a private, loopback or "
        "link-local address, and outbound requests to such addresses are refused (an operator "
        f"can allow this one with FLOWS_PRIVATE_HOSTS=http={bare}:8000)."
    )
    assert error.value.retryable is False


@pytest.mark.parametrize(
    "host",
    ["169.254.169.254", "[::ffff:169.254.169.254]", "[::a9fe:a9fe]", "[64:ff9b::a9fe:a9fe]"],
)
def test_cloud_metadata_is_never_reached_even_when_private_hosts_are_allowed(
    recorder, settings, host
):
    settings.FLOWS_ALLOW_PRIVATE_HOSTS = True
    settings.FLOWS_PRIVATE_HOSTS = {"http": {(host.strip("[]"), 80)}}
    with pytest.raises(CapabilityError) as error:
        call("http.request", recorder.context(), {"url": f"http://{host}/latest/meta-data/"})
    assert "a cloud metadata service, which outbound requests never reach" in error.value.message


def test_an_operator_lets_one_service_reach_one_private_host(llm, website, recorder, settings):
    settings.FLOWS_ALLOW_PRIVATE_HOSTS = False
    port = int(llm.url.rsplit(":", 1)[1])
    settings.FLOWS_PRIVATE_HOSTS = {"llm": {("127.0.0.1", port)}}
    config = {"base_url": llm.base_url, "model": "llama3"}
    answer = call("llm.chat", recorder.context(config=config), {"prompt": "hi"})
    assert answer["content"] == "echo: hi"
    # The same host is still closed to the other services, and other ports to the LLM.
    with pytest.raises(CapabilityError) as error:
        call("http.request", recorder.context(), {"url": f"{llm.url}/v1/models"})
    assert f"FLOWS_PRIVATE_HOSTS=http=127.0.0.1:{port}" in error.value.message
    with pytest.raises(CapabilityError):
        call(
            "llm.chat",
            recorder.context(config={**config, "base_url": website.url}),
            {"prompt": "x"},
        )


def test_the_private_hosts_setting_is_read_strictly():
    from flowbuilder.settings import private_hosts

    assert private_hosts("llm=127.0.0.1:11434, llm=[::1]:11434") == {
        "llm": {("127.0.0.1", 11434), ("::1", 11434)}
    }
    with pytest.raises(ValueError, match="is not service=host:port"):
        private_hosts("llm=127.0.0.1")


def test_names_are_checked_by_the_addresses_they_resolve_to(recorder, settings):
    settings.FLOWS_ALLOW_PRIVATE_HOSTS = False
    with pytest.raises(CapabilityError) as error:
        call("http.request", recorder.context(), {"url": "http://localhost:8000/"})
    assert error.value.message.startswith("localhost cannot be reached: localhost resolves to ")


def test_answers_over_the_size_cap_are_refused(website, recorder, settings):
    settings.FLOWS_HTTP_REQUEST_RESPONSE_MAX_BYTES = 4096
    ctx = recorder.context()
    assert len(call("http.request", ctx, {"url": f"{website.url}/bytes/4096"})["body"]) == 4096
    with pytest.raises(CapabilityError) as error:
        call("http.request", ctx, {"url": f"{website.url}/bytes/4097"})
    assert error.value.message == (
        "The answer from 127.0.0.1 is larger than this flow's limit of 4,096 bytes."
    )
    ctx.limits = {"max_response_bytes": 100}
    with pytest.raises(CapabilityError) as error:
        call("http.request", ctx, {"url": f"{website.url}/bytes/101"})
    assert error.value.message == (
        "The answer from 127.0.0.1 is larger than this flow's limit of 100 bytes."
    )


def test_secret_headers_of_the_connection_are_added_and_never_returned(website, recorder):
    token = "Bearer sk-live-abcdefghijklmnopqrstuvwx"
    ctx = recorder.context(
        secrets={"header:Authorization": token}, config={"base_url": website.url}
    )
    result = call("http.request", ctx, {"url": "/echo"})
    assert website.requests[-1].headers["authorization"] == token
    # The site echoes the header back: the step sees it masked.
    assert result["json"]["headers"]["authorization"] == "[redacted]"
    assert "sk-live-abcdefghijklmnopqrstuvwx" not in repr(result)


def test_secret_headers_go_only_to_the_base_url_host_and_named_hosts(website, recorder):
    token = "Bearer sk-live-abcdefghijklmnopqrstuvwx"
    secrets = {"header:Authorization": token}
    # A URL from an event, on another host than the connection's base URL: no secret sent.
    elsewhere = website.url.replace("127.0.0.1", "localhost") + "/echo"
    ctx = recorder.context(secrets=secrets, config={"base_url": website.url})
    result = call("http.request", ctx, {"url": elsewhere})
    assert "authorization" not in result["json"]["headers"]
    assert recorder.logs[-1] == (
        "warning",
        "http.request: the connection's secret headers were not sent to localhost, which is "
        "neither the connection's base URL nor a host the flow's allowlist names.",
    )
    # Allowing any host ("*") does not hand the secret to any host either.
    ctx = recorder.context(secrets=secrets, limits={"allowed_hosts": ["*"]})
    result = call("http.request", ctx, {"url": elsewhere})
    assert "authorization" not in result["json"]["headers"]
    # A host the allowlist names gets it.
    ctx = recorder.context(secrets=secrets, limits={"allowed_hosts": ["localhost"]})
    call("http.request", ctx, {"url": elsewhere})
    assert website.requests[-1].headers["authorization"] == token


def test_bad_requests_are_explained(recorder):
    ctx = recorder.context()
    with pytest.raises(CapabilityError) as error:
        call("http.request", ctx, {"url": "ftp://example.com/file"})
    assert error.value.message == (
        "http.request: 'url' must be an absolute http:// or https:// URL, got ftp://example.com/file."
    )
    with pytest.raises(CapabilityError) as error:
        call("http.request", ctx, {"url": "https://example.com", "method": "BREW"})
    assert error.value.message == (
        "http.request: 'method' must be one of GET, POST, PUT, PATCH, DELETE, HEAD, OPTIONS."
    )
    with pytest.raises(CapabilityError) as error:
        call("http.request", ctx, {"url": "https://example.com", "body": "a", "json": {}})
    assert error.value.message == "http.request takes 'body' or 'json', not both."


def test_an_unreachable_host_is_a_retryable_error(recorder):
    with pytest.raises(CapabilityError) as error:
        call("http.request", recorder.context(), {"url": "http://127.0.0.1:9/"})
    assert error.value.message == "127.0.0.1 cannot be reached: [Errno 111] Connection refused."
    assert error.value.retryable is True


def test_a_slow_answer_times_out_as_a_retryable_error(website, recorder):
    with pytest.raises(CapabilityError) as error:
        call(
            "http.request",
            recorder.context(),
            {"url": f"{website.url}/slow/400", "timeout_s": 0.1, "method": "POST"},
        )
    assert error.value.message == "127.0.0.1 did not answer within 0.1 s."
    assert error.value.retryable is True
    # A POST that may have been received is not sent again.
    assert len(website.requests) == 1


def test_the_llm_connection_form_says_which_local_servers_it_may_reach(settings, user):
    from integrations.forms import LLMConnectionForm

    settings.FLOWS_ALLOW_PRIVATE_HOSTS = False
    settings.FLOWS_PRIVATE_HOSTS = {"llm": {("127.0.0.1", 11434), ("localhost", 11434)}}
    help_text = LLMConnectionForm(owner=user).fields["base_url"].help_text
    assert help_text.endswith(
        "Of local and private addresses, this server allows 127.0.0.1:11434, localhost:11434."
    )
    settings.FLOWS_PRIVATE_HOSTS = {}
    assert "FLOWS_PRIVATE_HOSTS=llm=host:port" in (
        LLMConnectionForm(owner=user).fields["base_url"].help_text
    )
