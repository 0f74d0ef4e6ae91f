"""A small HTTP client for the service (standard library only): one kept-alive connection each."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit


class Client:
    def __init__(self, url: str, timeout: float = 60.0) -> None:
        parts = urlsplit(url)
        self.host, self.port, self.timeout = parts.hostname or "127.0.0.1", parts.port or 80, timeout
        self.conn: http.client.HTTPConnection | None = None

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        """(status, parsed body, headers); reconnects once when a kept-alive connection was closed."""
        payload = None if body is None else json.dumps(body).encode()
        sent = {"Content-Type": "application/json", **(headers or {})}
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            try:
                self.conn.request(method, path, payload, sent)
                response = self.conn.getresponse()
                raw = response.read()
            except (ConnectionError, http.client.HTTPException):
                self.close()
                if attempt:
                    raise
                continue
            text = raw.decode("utf-8", "replace")
            try:
                data: Any = json.loads(text) if text else None
            except json.JSONDecodeError:
                data = text
            return response.status, data, {k.lower(): v for k, v in response.getheaders()}
        raise AssertionError("unreachable")

    def get(self, path: str) -> tuple[int, Any, dict[str, str]]:
        return self.request("GET", path)

    def post(self, path: str, body: Any, key: str | None = None) -> tuple[int, Any, dict[str, str]]:
        return self.request("POST", path, body, {"X-Request-Key": key} if key else None)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
