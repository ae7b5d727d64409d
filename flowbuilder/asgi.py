import asyncio.base_events
import logging
import os
import socket

from django.core.asgi import get_asgi_application


def _tcp_nodelay(sock: socket.socket) -> None:
    """asyncio turns Nagle's algorithm off only on sockets that report `IPPROTO_TCP`. Those a
    server accepts on a listening socket made with protocol 0 report 0: `uvicorn --workers N`
    binds its socket that way, and there every answer on a kept-alive connection waited about
    40 ms for the client's delayed acknowledgement. Any TCP stream socket gets it here."""
    if (
        sock.family in (socket.AF_INET, socket.AF_INET6)
        and sock.type == socket.SOCK_STREAM
        and sock.proto in (0, socket.IPPROTO_TCP)
    ):
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # not a TCP socket after all
            pass


asyncio.base_events._set_nodelay = _tcp_nodelay

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "flowbuilder.settings")
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.core.handlers.asgi import ASGIHandler  # noqa: E402
from django.core.handlers.exception import convert_exception_to_response  # noqa: E402

from flows.routing import websocket_urlpatterns  # noqa: E402

HOOKS_PREFIX = "/hooks/"


class WebhookHandler(ASGIHandler):
    """Serves /hooks/: endpoints for machines, authenticated by the token in their URL, that
    answer JSON and use no session, user, CSRF token, message or static file. So they skip the
    middleware: under ASGI each synchronous or `MiddlewareMixin` middleware moves the request
    to a thread and back, which cost a webhook more than half of its time in the server."""

    def load_middleware(self, is_async: bool = False) -> None:
        self._view_middleware = []
        self._template_response_middleware = []
        self._exception_middleware = []
        get_response = self._get_response_async if is_async else self._get_response
        self._middleware_chain = convert_exception_to_response(get_response)


webhook_asgi_app = WebhookHandler()


async def http_app(scope, receive, send):
    app = webhook_asgi_app if scope["path"].startswith(HOOKS_PREFIX) else django_asgi_app
    await app(scope, receive, send)


async def lifespan(scope, receive, send):
    """The server's start and stop (uvicorn and hypercorn send them): it warms up its event
    loop before it takes requests (flows.engine.warm)."""
    from flows.engine.warm import warm_up_loop

    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await warm_up_loop()
            except Exception:  # a server that cannot warm up still serves, a little slower
                logging.getLogger(__name__).warning("warming up the loop failed", exc_info=True)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


application = ProtocolTypeRouter(
    {
        "http": http_app,
        "lifespan": lifespan,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
