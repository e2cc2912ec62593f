"""Build a downstream URL that cannot leave the downstream's configured origin or base path.

Route code passes a path template and its parameters; each parameter is percent-encoded as one
path segment, and the result is refused (``UnsafeDownstreamPath``) when it is absolute,
protocol-relative, holds dot segments (plain or encoded), backslashes or control characters, or
would resolve outside the base path. The final URL is checked once more after httpx merged it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote, unquote, urlsplit

from .errors import UnsafeDownstreamPath

DOT_SEGMENTS = frozenset({".", ".."})
# Query and fragment belong in params=; backslashes and control characters have no business here.
UNSAFE_CHARACTERS = re.compile(r"[\x00-\x20\x7f\\?#]")
DEFAULT_PORTS = {"http": 80, "https": 443}


class PathBuilder:
    """Turns ``("/items/{item_id}", {"item_id": "a b"})`` into ``/items/a%20b`` safely."""

    def __init__(self, downstream: str, base_url: str) -> None:
        self.downstream = downstream
        parts = urlsplit(base_url)
        self.origin = (parts.scheme, parts.hostname, parts.port or DEFAULT_PORTS[parts.scheme])
        self.base_path = parts.path.rstrip("/")

    def refuse(self, why: str) -> UnsafeDownstreamPath:
        return UnsafeDownstreamPath(self.downstream, f"request refused: {why}")

    def build(self, template: str, params: Mapping[str, object] | None = None) -> str:
        if not template.startswith("/") or template.startswith("//"):
            raise self.refuse("the path must be relative to the downstream, starting with one '/'")
        try:
            path = (
                template.format_map({k: quote(str(v), safe="") for k, v in params.items()})
                if params
                else template
            )
        except (KeyError, IndexError, ValueError) as exc:
            raise self.refuse(f"path template {template!r} does not match its parameters") from exc
        if UNSAFE_CHARACTERS.search(path):
            raise self.refuse("the path holds a backslash, a control character, '?' or '#'")
        if "." in path or "%" in path:  # dot segments, plain or percent-encoded
            for segment in path.split("/"):
                decoded = unquote(unquote(segment)).replace("\\", "/")
                if any(part in DOT_SEGMENTS for part in decoded.split("/")):
                    raise self.refuse("the path holds a '.' or '..' segment, plain or encoded")
        return path

    def check_final(self, scheme: str, host: str, port: int | None, raw_path: bytes) -> None:
        """Defence in depth: what httpx will actually send stays on the configured origin."""
        if (scheme, host, port) != self.origin:
            raise self.refuse("the final URL points at another origin")
        path = raw_path.split(b"?", 1)[0].decode("ascii", "replace")
        if self.base_path and not (path == self.base_path or path.startswith(self.base_path + "/")):
            raise self.refuse("the final URL leaves the downstream's base path")
