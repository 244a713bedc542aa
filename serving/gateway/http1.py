"""A small HTTP/1.1 keep-alive client for the gateway's one upstream (Triton on loopback).

The gateway forwards every request, so the client's own cost is on the hot path: a general
client (aiohttp) spends more CPU per request than the validation and decision together. This
one writes each request with one `transport.write`, parses answers with httptools (C, the
parser uvicorn uses) and keeps a pool of idle connections. It speaks only what Triton
answers: `Content-Length` bodies, keep-alive, no redirects, no compression, no TLS.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httptools


class UpstreamError(OSError):
    """The connection failed, was closed, or the answer did not come in time."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[Response] | None = None
        self.closed = False
        self.received = False
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []

    # asyncio.Protocol
    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"unreadable answer from upstream: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(UpstreamError(f"upstream closed the connection{f': {exc}' if exc else ''}"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        response = Response(self.parser.get_status_code(), self._headers, b"".join(self._body))
        if not self.parser.should_keep_alive():
            self.close()
        self._headers, self._body = {}, []
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(response)

    def _fail(self, error: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(error)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def send(self, data: bytes) -> asyncio.Future[Response]:
        loop = asyncio.get_running_loop()
        self.waiter, self.received = loop.create_future(), False
        if self.transport is None:
            raise UpstreamError("not connected")
        self.transport.write(data)
        return self.waiter


class ConnectionPool:
    """Keep-alive connections to one `host:port`, at most `size` at once (then callers wait)."""

    def __init__(self, host: str, port: int, *, size: int = 64, timeout_s: float = 10.0) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(size)
        self._prefix = f"Host: {host}:{port}\r\n".encode()

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> Response:
        """Send one request; UpstreamError when the upstream cannot answer in time."""
        lines = [f"{method} {path} HTTP/1.1\r\n".encode(), self._prefix]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}\r\n".encode())
        lines.append(f"Content-Length: {len(body)}\r\n\r\n".encode())
        data = b"".join(lines) + body
        async with self._slots:
            for attempt in range(2):
                reused = bool(self._idle)
                connection = self._idle.pop() if reused else await self._connect()
                try:
                    response = await self._exchange(connection, data)
                except UpstreamError:
                    lost_before_answer = connection.closed and not connection.received
                    connection.close()
                    # A pooled connection the server had closed: the request never reached
                    # it, so one retry on a fresh connection is safe.
                    if reused and attempt == 0 and lost_before_answer:
                        continue
                    raise
                if not connection.closed:
                    self._idle.append(connection)
                return response
        raise AssertionError("unreachable")

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(_Connection, self.host, self.port), self.timeout_s
            )
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        return connection

    async def _exchange(self, connection: _Connection, data: bytes) -> Response:
        if connection.closed:
            raise UpstreamError("connection already closed")
        waiter = connection.send(data)
        timer = asyncio.get_running_loop().call_later(
            self.timeout_s,
            connection._fail,
            UpstreamError(f"no answer within {self.timeout_s:.0f} s"),
        )
        try:
            return await waiter
        finally:
            timer.cancel()

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()
