"""The one place the HTTP client library is imported.

The bake chose ``{{ cookiecutter.http_client }}``; ``httpx`` and Pydantic's fork ``httpx2`` share an
API, so the rest of the service imports ``httpx`` from here and never names the library itself.
"""

from __future__ import annotations

import {{ cookiecutter.http_client }} as httpx

__all__ = ["httpx"]
