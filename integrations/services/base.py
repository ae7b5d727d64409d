"""The one HTTP path every service module uses.

`ServiceClient` sends a request with a timeout, retries a bounded number of times with
exponential backoff, honours `Retry-After` (up to FLOWS_HTTP_RETRY_AFTER_MAX_S: a service that asks
for a longer wait gets a retryable error at once instead of a stalled step), caps the size of the
answer, and turns failures into `CapabilityError`s that say what went wrong and whether a retry can
help. Each service subclasses it and overrides `error_for` to put its own answers into words.

URLs that come from a user (a connection's base URL or webhook URL, an http.request target) are
sent through a guarded transport that refuses private, loopback and link-local addresses after DNS
resolution, at connect time, so a name that re-resolves cannot slip past the check.
"""

from __future__ import annotations

import email.utils
import ipaddress
import math
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from functools import lru_cache
from typing import Any

import certifi
import httpcore
import httpx
from django.conf import settings

from flows.capabilities import CapabilityError, time_left
from integrations.redaction import redact

LogFn = Callable[[str, str], None]

# Answers that say "not now": a later try may succeed.
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# Answers that prove a non-idempotent request was not carried out, so resending it is safe.
NOT_PROCESSED_STATUSES = frozenset({425, 429, 503})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
USER_AGENT = "Flowbuilder"


class ServiceError(CapabilityError):
    """A CapabilityError that remembers the HTTP status it came from (None: no answer)."""

    def __init__(self, message: str, *, retryable: bool = False, status: int | None = None):
        super().__init__(message, retryable=retryable)
        self.status = status


# An attempt with less time than this left in its step is not worth starting.
MIN_ATTEMPT_S = 0.5
# What a call leaves of its step's time for the work after it (label, reply, post the comment).
RESERVE_S = 10.0


def call_budget(left: float) -> float:
    """The most one attempt may take with `left` seconds left in its step: all but a reserve for
    the step's later calls, and never less than half of what is left."""
    return max(left - RESERVE_S, left / 2)


class BlockedAddress(Exception):
    """A user-supplied URL resolved to an address outbound requests may not reach."""


# Cloud metadata services: never reachable, whatever an operator allows.
METADATA_ADDRESSES = {
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254")
}
NAT64 = ipaddress.ip_network("64:ff9b::/96")
IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: mapped (::ffff:a.b.c.d), compatible
    (::a.b.c.d), NAT64 (64:ff9b::a.b.c.d), 6to4 (2002:aabb:ccdd::) and Teredo (2001::/32)."""
    found = []
    if ip.ipv4_mapped:
        found.append(ip.ipv4_mapped)
    if ip in IPV4_COMPATIBLE or ip in NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour:
        found.append(ip.sixtofour)
    if ip.teredo:
        found.extend(ip.teredo)
    return found


def is_public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if ip in METADATA_ADDRESSES:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner:
            return all(is_public_address(str(v4)) for v4 in inner)
    return ip.is_global and not ip.is_multicast


def is_metadata_address(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    carried = embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else []
    return ip in METADATA_ADDRESSES or any(v4 in METADATA_ADDRESSES for v4 in carried)


def allowed_private(service: str, host: str, address: str, port: int) -> bool:
    """Whether the operator lets this service reach this private host and port
    (FLOWS_PRIVATE_HOSTS, e.g. "llm=127.0.0.1:11434,llm=localhost:11434")."""
    allowed = settings.FLOWS_PRIVATE_HOSTS.get(service, set())
    return (host.lower(), port) in allowed or (address, port) in allowed


class GuardedBackend(httpcore.SyncBackend):
    """Resolves the host itself and connects only to public addresses (and to the private ones
    the operator allows this service), never to a cloud metadata service."""

    def __init__(self, service: str = "") -> None:
        super().__init__()
        self.service = service

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"the name {host} does not resolve ({exc})") from exc
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        for address in addresses:
            if is_metadata_address(address):
                raise BlockedAddress(
                    f"{host} resolves to {address}, a cloud metadata service, which outbound "
                    "requests never reach."
                )
            if settings.FLOWS_ALLOW_PRIVATE_HOSTS or is_public_address(address):
                continue
            if not allowed_private(self.service, host, address, port):
                raise BlockedAddress(
                    f"{host} resolves to {address}, a private, loopback or link-local address, "
                    "and outbound requests to such addresses are refused (an operator can allow "
                    f"this one with FLOWS_PRIVATE_HOSTS={self.service or 'service'}={host}:{port})."
                )
        error: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                # TLS still verifies the certificate against the name: httpcore passes it as SNI.
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                error = exc
        raise error or httpcore.ConnectError(f"the name {host} has no address")


@lru_cache(maxsize=1)
def _ssl_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certifi.where())


class GuardedTransport(httpx.HTTPTransport):
    def __init__(self, service: str = "") -> None:
        super().__init__(verify=_ssl_context(), trust_env=False)
        # httpx builds its pool without a way to pass a network backend: replace it.
        self._pool = httpcore.ConnectionPool(
            ssl_context=_ssl_context(), network_backend=GuardedBackend(service)
        )


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    if value := headers.get("retry-after-ms"):
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def seconds(value: float) -> str:
    """A wait in words: "0.5 s", "42 s", "3 min"."""
    if value < 10:
        return f"{max(round(value, 1), 0.1 if value > 0 else 0):g} s"
    whole = math.ceil(value)
    if whole < 120:
        return f"{whole} s"
    return f"{math.ceil(whole / 60)} min"


class ServiceClient:
    """A service's view of the shared HTTP path. Use as a context manager."""

    name = "The service"
    # The connection service this client speaks for: which private hosts it may reach.
    service = ""
    # Whether every POST is safe to resend (true for read-only APIs such as chat completions).
    posts_are_idempotent = False
    # Whether 4xx/5xx answers are returned to the caller as they are instead of raised.
    returns_error_answers = False

    def __init__(
        self,
        *,
        base_url: str = "",
        headers: Mapping[str, str] | None = None,
        guard: bool = False,
        secrets: Iterable[str] = (),
        log: LogFn | None = None,
        timeout: float | None = None,
        attempts: int | None = None,
        max_bytes: int | None = None,
        follow_redirects: bool = True,
    ) -> None:
        self.secrets = [s for s in secrets if s]
        self._log = log or (lambda level, message: None)
        self.attempts = max(1, attempts or settings.FLOWS_HTTP_ATTEMPTS)
        self.max_bytes = max_bytes or settings.FLOWS_HTTP_RESPONSE_MAX_BYTES
        self.timeout = timeout or settings.FLOWS_HTTP_TIMEOUT_S
        self.client = httpx.Client(
            base_url=base_url,
            headers={"User-Agent": USER_AGENT, **(headers or {})},
            timeout=self.timeout,
            transport=(
                GuardedTransport(self.service)
                if guard
                else httpx.HTTPTransport(verify=_ssl_context())
            ),
            trust_env=not guard,
            follow_redirects=follow_redirects,
        )

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def log(self, level: str, message: str) -> None:
        self._log(level, redact(message, self.secrets))

    def fail(
        self, message: str, *, retryable: bool = False, status: int | None = None
    ) -> ServiceError:
        return ServiceError(redact(message, self.secrets), retryable=retryable, status=status)

    def request(self, method: str, url: str, *, what: str = "", **kwargs: Any) -> httpx.Response:
        """Send a request; return a successful answer or raise CapabilityError."""
        return self.send(self.client.build_request(method, url, **kwargs), what=what)

    def send(self, request: httpx.Request, *, what: str = "") -> httpx.Response:
        safe_to_resend = request.method in IDEMPOTENT_METHODS or self.posts_are_idempotent
        for attempt in range(1, self.attempts + 1):
            wait: float | None = None
            # Each attempt gets what is left of the step's time, at most the service's timeout.
            left = time_left()
            if left is not None and left < MIN_ATTEMPT_S:
                raise self.fail(
                    f"{self.name} was not asked: the step's time limit is (nearly) reached.",
                    retryable=False,
                )
            timeout = self.timeout if left is None else min(self.timeout, call_budget(left))
            request.extensions["timeout"] = httpx.Timeout(timeout).as_dict()
            try:
                response = self._send_once(request)
            except BlockedAddress as exc:
                raise self.fail(f"{self.name} cannot be reached: {exc}") from None
            except httpx.TimeoutException as exc:
                if timeout < self.timeout:
                    raise self.fail(
                        f"{self.name} did not answer within the {seconds(timeout)} the step "
                        "could give it of its time limit.",
                        retryable=False,
                    ) from None
                error = self.fail(
                    f"{self.name} did not answer within {seconds(self.timeout)}.", retryable=True
                )
                # Only a failed connect proves the request was not received.
                resend = safe_to_resend or isinstance(exc, httpx.ConnectTimeout)
            except httpx.RequestError as exc:
                host = request.url.host
                where = "" if host in self.name else f" at {host}"
                error = self.fail(f"{self.name} cannot be reached{where}: {exc}.", retryable=True)
                resend = safe_to_resend or isinstance(exc, httpx.ConnectError)
            else:
                if response.status_code < 400 or self.returns_error_answers:
                    return response
                error = self.error_for(response, what)
                error.status = response.status_code
                if not error.retryable:
                    raise error
                resend = safe_to_resend or response.status_code in NOT_PROCESSED_STATUSES
                wait = self.retry_delay(response)
                if wait is not None and wait > settings.FLOWS_HTTP_RETRY_AFTER_MAX_S:
                    # Too long to hold a worker: the engine parks the run that long instead.
                    error.retry_after = wait
                    raise error
            if attempt == self.attempts or not resend:
                raise error
            if wait is None:
                wait = settings.FLOWS_HTTP_BACKOFF_S * 2 ** (attempt - 1)
            left = time_left()
            if left is not None and wait + MIN_ATTEMPT_S > left:
                raise error  # no time left in the step for another attempt
            self.log(
                "warning",
                f"{error.message} Retrying in {wait:.1f} s (attempt {attempt + 1} of "
                f"{self.attempts}).",
            )
            time.sleep(wait)
        raise AssertionError("unreachable")

    def _send_once(self, request: httpx.Request) -> httpx.Response:
        response = self.client.send(request, stream=True)
        try:
            declared = int(response.headers.get("content-length") or 0)
            if declared > self.max_bytes:
                raise self.too_large()
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise self.too_large()
                chunks.append(chunk)
        finally:
            response.close()
        # The body is now decoded: its transfer and content encodings no longer apply.
        headers = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in {"content-encoding", "content-length", "transfer-encoding"}
        ]
        return httpx.Response(
            response.status_code,
            headers=headers,
            content=b"".join(chunks),
            request=request,
        )

    def too_large(self) -> CapabilityError:
        return self.fail(
            f"The answer from {self.name} is larger than the limit of {self.max_bytes:,} bytes."
        )

    # Hooks a service overrides.

    def retry_delay(self, response: httpx.Response) -> float | None:
        """Seconds the service asks us to wait before retrying, if it says."""
        return parse_retry_after(response.headers)

    def error_for(self, response: httpx.Response, what: str) -> ServiceError:
        """The error for a 4xx/5xx answer, in words, and whether retrying can help."""
        status = response.status_code
        detail = short_detail(response)
        retryable = status in RETRYABLE_STATUSES
        if status == 429:
            wait = self.retry_delay(response)
            asks = f"; it asks to wait {seconds(wait)}" if wait is not None else ""
            return self.fail(
                f"{self.name} is rate limiting these requests{asks}.", retryable=True, status=429
            )
        if status >= 500:
            text = f"{self.name} had a server error ({status})"
        else:
            text = f"{self.name} answered {status} {response.reason_phrase}"
        if what:
            text += f" for {what}"
        if detail:
            text += f": {detail}"
        return self.fail(text + ".", retryable=retryable, status=status)


def short_detail(response: httpx.Response, limit: int = 300) -> str:
    """The service's own explanation from an error body: its `message`/`error`, or the text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        for key in ("message", "description", "error_description", "error"):
            value = body.get(key)
            if isinstance(value, dict):
                value = value.get("message")
            if isinstance(value, str) and value:
                return value.strip().rstrip(".")[:limit]
    text = response.text.strip()
    if text.startswith("<"):
        return ""
    return text.rstrip(".")[:limit]
