"""How the server speaks HTTP: uvicorn on httptools, with bounds on a request's head.

httptools buffers a request line and headers without limit (a 64 MB header was accepted), so
the protocol here refuses a URL above ``MAX_URL_BYTES`` with 414 and a head above
``MAX_HEAD_BYTES`` with 431, answered as JSON like every other error, before the app sees the
request. Body limits are the app's (``api/guards.py``): they depend on the route.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

MAX_URL_BYTES = 16 * 1024
MAX_HEAD_BYTES = 64 * 1024
UNFINISHED_HEAD_BYTES = 1024 * 1024

REFUSALS = {
    414: (b"URI Too Long", f"request URL longer than {MAX_URL_BYTES} bytes"),
    431: (
        b"Request Header Fields Too Large",
        f"request headers larger than {MAX_HEAD_BYTES} bytes",
    ),
}


# The longest a thread keeps the GIL while another waits for it (Python's default: ten times
# as long).
# The event loop waits this long for it, at worst, each time it resumes while a worker thread
# computes; worker threads lose little to the extra switches, the loop gains at every callback.
GIL_SWITCH_INTERVAL_S = 0.0005


def favour_the_event_loop() -> None:
    """Lower the process's GIL switch interval (see ``api/deps.py`` on heavy work)."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


def uvicorn_options() -> dict[str, Any]:
    """Options every way of running the server gives ``uvicorn.run`` / ``uvicorn.Config``."""
    return {
        # By import path: ``serve --workers`` hands the options to other processes.
        "http": f"{__name__}:BoundedHttpToolsProtocol",
        # Proxy headers are handled by the app itself, and only from INDEXCHAT_TRUSTED_PROXIES.
        "proxy_headers": False,
    }


class HeadTooLarge(Exception):
    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing over-long URLs (414) and heads (431)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0  # received since the current request began, while in its head

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0

    def on_url(self, url: bytes) -> None:
        super().on_url(url)  # called per received piece: the check bounds what is buffered
        if len(self.url) > MAX_URL_BYTES:
            raise HeadTooLarge(414)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > MAX_HEAD_BYTES:
            raise HeadTooLarge(431)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_head = True

    def data_received(self, data: bytes) -> None:
        # As uvicorn's own, with the refusals; the rest is uvicorn's handling unchanged.
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, HeadTooLarge):
                self._refuse(exc.__context__.status)
            else:
                self._malformed()
        except httptools.HttpParserError:
            self._malformed()
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
        else:
            self._bound_unfinished_head(len(data))

    def _bound_unfinished_head(self, received: int) -> None:
        """httptools hands over a header only once it ends, buffering it until then: bound what
        a head that has not ended may hold (loosely: a read may also end the previous request)."""
        if not self._in_head:
            return
        self._head_bytes += received
        if self._head_bytes > UNFINISHED_HEAD_BYTES:
            self._refuse(431)

    def _malformed(self) -> None:
        message = "Invalid HTTP request received."
        self.logger.warning(message)
        self.send_400_response(message)

    def _refuse(self, status: int) -> None:
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # an earlier request is still answering: no room for ours
            return
        reason, detail = REFUSALS[status]
        body = json.dumps({"detail": detail}).encode()
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self.transport.close()
