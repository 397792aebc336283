"""What the browser tests share: progress lines, and the JSON API with one bearer token (to
check what the pages show against what the server says). The tests run as scripts from this
directory, so `from support import ...` finds it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


def step(msg: str) -> None:
    print(f"--- {msg}", flush=True)


class Api:
    """The staff JSON API with one bearer token."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.token = token

    def call(self, method: str, path: str, body: object | None = None, expect: int = 200):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, text = r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            status, text = e.code, e.read().decode(errors="replace")
        assert status == expect, f"{method} {path}: expected {expect}, got {status}: {text[:800]}"
        return json.loads(text) if text else None

    def get(self, path: str, **kw):
        return self.call("GET", path, **kw)

    def post(self, path: str, body: object, **kw):
        return self.call("POST", path, body, **kw)
