"""The ASGI entry point's own fixes to how it is served."""

from __future__ import annotations

import asyncio
import socket

import flowbuilder.asgi  # noqa: F401  (installs the fix below)


def test_connections_accepted_on_a_protocol_0_listener_have_nagle_off():
    """`uvicorn --workers N` listens on a socket made with protocol 0; asyncio left Nagle's
    algorithm on for the connections it accepted there, so each answer on a kept-alive
    connection waited for the client's delayed acknowledgement."""

    async def accept_one() -> int:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # as uvicorn binds it
        listener.bind(("127.0.0.1", 0))
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Report(asyncio.Protocol):
            def connection_made(self, transport):
                sock = transport.get_extra_info("socket")
                accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Report, sock=listener)
        async with server:
            _, writer = await asyncio.open_connection(*listener.getsockname())
            nodelay = await asyncio.wait_for(accepted, 5)
            writer.close()
        return nodelay

    assert asyncio.run(accept_one()) == 1
