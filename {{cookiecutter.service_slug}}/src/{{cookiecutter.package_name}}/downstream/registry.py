"""Open every configured downstream once, for the life of the process, and close them.

This is the only module that constructs an ``AsyncClient`` (a test enforces it): one per
downstream, for the life of the process, on the engine its settings pick (aiohttp's connector
or httpcore's pool), with explicit limits and timeouts and one prebuilt
``ssl.SSLContext`` per trust configuration. Building a context costs ~38 ms of CPU, which is
most of why a client per request runs 10-40x slower. Contexts are shared only between clients
with the same ``http2`` flag, because httpcore sets ALPN on the context at every connect.
Clients keep no cookies: one client serves every inbound user, so a cookie a downstream set
for one request would otherwise be sent on everybody else's.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from http.cookiejar import CookieJar, DefaultCookiePolicy
from pathlib import Path

import certifi

from .aiohttp_transport import AiohttpTransport
from .client import Downstream
from .config import DownstreamSettings, ObservabilitySettings
from .httplib import httpx
from .spans import NO_SPANS, Spans

# Implicit aliases: valid on every supported Python (3.12's `type` statement is not on 3.11).
Downstreams = Mapping[str, Downstream]
TlsKey = tuple[Path | None, bool, bool]


def build_ssl_context(ca_bundle: Path | None, verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca_bundle or certifi.where()))
    if not verify:  # refused by the settings outside ENVIRONMENT=development
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def cookie_jar_that_keeps_nothing() -> CookieJar:
    # A CookieJar, not httpx.Cookies: httpx copies a Cookies object into a jar of its own,
    # dropping the policy, but keeps a CookieJar as it is.
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def build_client(
    settings: DownstreamSettings,
    ssl_context: ssl.SSLContext,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """``transport`` replaces the network (a test's fake); else ``settings.engine`` picks it."""
    if transport is None and settings.uses_aiohttp:
        transport = AiohttpTransport(settings.limits, ssl_context)
    limits = settings.limits
    timeouts = settings.timeouts
    return httpx.AsyncClient(
        base_url=settings.base_url,
        http2=settings.http2,
        verify=ssl_context,
        limits=httpx.Limits(
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
        ),
        timeout=httpx.Timeout(
            connect=timeouts.connect, read=timeouts.read, write=timeouts.write, pool=timeouts.pool
        ),
        headers={name: secret.get_secret_value() for name, secret in settings.headers.items()},
        cookies=cookie_jar_that_keeps_nothing(),
        follow_redirects=False,  # a redirect could leave the configured origin
        trust_env=False,  # proxies from the environment would bypass the pool we size here
        transport=transport,  # None: httpcore's pool, built from the limits above
    )


@asynccontextmanager
async def open_downstreams(
    configs: Mapping[str, DownstreamSettings],
    *,
    deadline_header: str,
    drain_seconds: float,
    observability: ObservabilitySettings | None = None,
    transports: Mapping[str, httpx.AsyncBaseTransport] | None = None,
    spans: Spans = NO_SPANS,
) -> AsyncIterator[Downstreams]:
    """One ``Downstream`` per config; ``transports`` swaps a named one's network for a fake;
    ``spans`` traces each call and has each client's attempts traced."""
    transports = transports or {}
    contexts: dict[TlsKey, ssl.SSLContext] = {}
    downstreams: dict[str, Downstream] = {}
    for name, settings in configs.items():
        key = (settings.ca_bundle, settings.tls_verify, settings.http2)
        if key not in contexts:
            contexts[key] = build_ssl_context(settings.ca_bundle, settings.tls_verify)
        client = build_client(settings, contexts[key], transports.get(name))
        spans.instrument_client(client)
        downstreams[name] = Downstream(
            name,
            settings,
            client,
            deadline_header=deadline_header,
            observability=observability,
            spans=spans,
        )
    try:
        yield downstreams
    finally:
        await asyncio.gather(*(d.aclose(drain_seconds) for d in downstreams.values()))
