"""Run an app on uvicorn with a bound on slow clients: a connection that has not sent a whole request head within
`header_timeout_s` (a slowloris client dripping a byte a second, or one that never speaks) is closed. Uvicorn
bounds idle keep-alive connections but not one that is still sending its head; the server and the deployers'
router both run through here.
"""

from __future__ import annotations

import json
from typing import Optional

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


def guarded_protocol(header_timeout_s: float) -> type:
    """Uvicorn's h11 protocol, closing a connection whose request head is not complete in `header_timeout_s`."""

    class HeadTimeout(H11Protocol):
        _deadline: Optional[object] = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._await_head()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:  # the head is in: the request's own bounds take over
                self._cancel()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._await_head()  # keep-alive: the next request's head is bounded too

        def connection_lost(self, exc) -> None:
            self._cancel()
            super().connection_lost(exc)

        def _await_head(self) -> None:
            self._cancel()
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self._deadline = self.loop.call_later(header_timeout_s, self._expire)

        def _cancel(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _expire(self) -> None:
            self._deadline = None
            if not self.transport.is_closing():
                self.transport.close()

        def send_400_response(self, msg: str) -> None:
            """A request that is not HTTP (a malformed or oversized head): 400 in the API's error shape."""
            body = json.dumps({"error": {"message": msg, "type": "invalid_request_error", "param": None,
                                         "code": "invalid_http"}}).encode()
            headers = [(b"content-type", b"application/json"), (b"connection", b"close")]
            for event in (h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
                          h11.Data(data=body), h11.EndOfMessage()):
                self.transport.write(self.conn.send(event))
            self.transport.close()

    return HeadTimeout


def serve(app, host: str, port: int, header_timeout_s: float = 10.0) -> None:
    """uvicorn.run with the head bound, quiet logs and no access log (requests carry incident data)."""
    import uvicorn

    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                http=guarded_protocol(header_timeout_s))


def server(app, host: str, port: int, header_timeout_s: float = 10.0):
    """A uvicorn.Server to run in a thread (tests, benches), with the same bounds as `serve`."""
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                         http=guarded_protocol(header_timeout_s)))
