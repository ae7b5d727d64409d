"""HTTP request: any method to any allowed public host, with the answer returned as data.

Guards, all on the host: the flow's host allowlist (binding limit `allowed_hosts`: exact names,
`*.example.com` for subdomains, `*` for any), then private, loopback and link-local addresses
refused after DNS resolution (unless FLOWS_ALLOW_PRIVATE_HOSTS), a cap on the answer's size
(binding limit `max_response_bytes`, at most FLOWS_HTTP_RESPONSE_MAX_BYTES, by default
FLOWS_HTTP_REQUEST_RESPONSE_MAX_BYTES), and no redirects followed (a 3xx comes back as it is).

An optional `http` connection adds secret headers (secrets named `header:<Name>`) and a base URL
for relative URLs; the step never sees those header values. The headers go only to the base URL's
host and to hosts the allowlist names (not `*`), so a URL taken from an event cannot collect them.
"""

from __future__ import annotations

from typing import Any

import httpx
from django.conf import settings

from flows.capabilities import CapabilityContext, CapabilityError
from flows.catalog import Param
from integrations.capabilities import offer
from integrations.services.base import ServiceClient

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
HEADER_SECRET_PREFIX = "header:"


def secret_headers(secrets: dict | None) -> dict[str, str]:
    return {
        key[len(HEADER_SECRET_PREFIX) :]: str(value)
        for key, value in (secrets or {}).items()
        if key.startswith(HEADER_SECRET_PREFIX) and value
    }


def host_allowed(url: httpx.URL, allowed: list[str]) -> bool:
    host = (url.host or "").lower()
    for entry in allowed:
        entry = entry.strip().lower()
        name, _, port = entry.partition(":") if entry.count(":") == 1 else (entry, "", "")
        if port and port.isdigit() and int(port) != (url.port or _default_port(url)):
            continue
        if name == "*" or name == host or (name.startswith("*.") and host.endswith(name[1:])):
            return True
    return False


def secrets_may_go_to(url: httpx.URL, base_url: str, allowed: list[str] | None) -> bool:
    """Whether the connection's secret headers may be sent to `url`."""
    if base_url:
        base = httpx.URL(base_url)
        if (base.host, base.port or _default_port(base)) == (
            url.host,
            url.port or _default_port(url),
        ):
            return True
    named = [entry for entry in allowed or [] if entry.strip() != "*"]
    return host_allowed(url, named)


def _default_port(url: httpx.URL) -> int:
    return 443 if url.scheme == "https" else 80


class Outbound(ServiceClient):
    service = "http"
    returns_error_answers = True

    def __init__(self, host: str, secrets: list[str], log, timeout: float, max_bytes: int):
        self.name = host
        super().__init__(
            guard=True,
            secrets=secrets,
            log=log,
            timeout=timeout,
            max_bytes=max_bytes,
            follow_redirects=False,
        )

    def too_large(self):
        return self.fail(
            f"The answer from {self.name} is larger than this flow's limit of "
            f"{self.max_bytes:,} bytes."
        )


def _decode(response: httpx.Response) -> tuple[str, Any]:
    text = response.content.decode(response.encoding or "utf-8", errors="replace")
    if "json" in response.headers.get("content-type", "").lower():
        try:
            return text, response.json()
        except ValueError:
            pass
    return text, None


@offer(
    "http.request",
    service="http",
    title="HTTP request",
    description=(
        "Send an HTTP request to an allowed host and get its status, headers and body. "
        "Error statuses are returned as data, not raised; redirects are not followed."
    ),
    params=(
        Param("method", "string", label="Method", default="GET", description=", ".join(METHODS)),
        Param("url", "string", label="URL", required=True, description="http:// or https://"),
        Param("headers", "json", label="Headers", description="an object of header: value"),
        Param("body", "text", label="Body", description="request body as text"),
        Param("json", "json", label="JSON body", description="sent as application/json"),
        Param("timeout_s", "number", label="Timeout (s)", description="at most the operator's"),
    ),
    result="{status, headers: {name: value}, body: text, json?: parsed body when JSON}",
    writes=True,
)
def request(ctx: CapabilityContext, payload: dict) -> dict:
    config = ctx.connection_config or {}
    limits = ctx.limits or {}
    method = payload["method"].upper()
    if method not in METHODS:
        raise CapabilityError(f"http.request: 'method' must be one of {', '.join(METHODS)}.")
    if "body" in payload and "json" in payload:
        raise CapabilityError("http.request takes 'body' or 'json', not both.")
    headers = payload.get("headers") or {}
    if not isinstance(headers, dict):
        raise CapabilityError("http.request: 'headers' must be an object of header: value.")
    try:
        url = httpx.URL(payload["url"])
        if not url.is_absolute_url and config.get("base_url"):
            url = httpx.URL(config["base_url"]).join(payload["url"])
    except httpx.InvalidURL as exc:
        raise CapabilityError(f"http.request: 'url' is not a valid URL: {exc}.") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise CapabilityError(
            f"http.request: 'url' must be an absolute http:// or https:// URL, got {url}."
        )
    allowed = limits.get("allowed_hosts")
    if allowed is not None and not host_allowed(url, list(allowed)):
        listed = ", ".join(allowed) or "none"
        raise CapabilityError(
            f"This flow may send HTTP requests only to these hosts: {listed}; "
            f"{url.host} is not one of them."
        )
    hidden = secret_headers(ctx.secrets)
    if hidden and not secrets_may_go_to(url, config.get("base_url") or "", allowed):
        ctx.log(
            "warning",
            f"http.request: the connection's secret headers were not sent to {url.host}, which "
            "is neither the connection's base URL nor a host the flow's allowlist names.",
        )
        hidden = {}
    cap = settings.FLOWS_HTTP_RESPONSE_MAX_BYTES
    max_bytes = min(
        int(limits.get("max_response_bytes") or settings.FLOWS_HTTP_REQUEST_RESPONSE_MAX_BYTES),
        cap,
    )
    timeout = min(
        float(payload.get("timeout_s") or settings.FLOWS_HTTP_TIMEOUT_S),
        settings.FLOWS_HTTP_TIMEOUT_S,
    )
    kwargs: dict[str, Any] = {"headers": {**{k: str(v) for k, v in headers.items()}, **hidden}}
    if "json" in payload:
        kwargs["json"] = payload["json"]
    elif "body" in payload:
        kwargs["content"] = payload["body"].encode()
    with Outbound(url.host, list(hidden.values()), ctx.log, timeout, max_bytes) as out:
        response = out.request(method, str(url), what=f"{method} {url.host}", **kwargs)
    text, parsed = _decode(response)
    result: dict[str, Any] = {
        "status": response.status_code,
        "headers": dict(response.headers),
        "body": text,
    }
    if parsed is not None:
        result["json"] = parsed
    return result


def test(config: dict, secrets: dict) -> tuple[bool, str]:
    """A GET on the base URL, when the connection has one."""
    base_url = (config.get("base_url") or "").strip()
    if not base_url:
        return True, "Nothing to test: this connection only adds headers to requests."
    host = httpx.URL(base_url).host
    hidden = secret_headers(secrets)
    with Outbound(
        host,
        list(hidden.values()),
        None,
        settings.FLOWS_HTTP_TIMEOUT_S,
        settings.FLOWS_HTTP_REQUEST_RESPONSE_MAX_BYTES,
    ) as out:
        response = out.request("GET", base_url, headers=hidden, what="base URL")
    ok = response.status_code < 400
    return ok, f"{host} answered {response.status_code} {response.reason_phrase}."
