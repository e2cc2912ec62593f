"""Throwaway TLS material for ``--tls``: a fresh trustme CA per start.

The CA PEM is written where the caller asks, so the service under test can
trust it (``ssl.create_default_context(cafile=...)``) without touching any
system trust store. ALPN offers h2 first, then http/1.1.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import trustme


def make_server_context(host: str, ca_path: Path) -> ssl.SSLContext:
    """Issue a certificate for ``host`` (plus the usual loopback names), write the CA."""
    ca = trustme.CA()
    names = dict.fromkeys((host, "127.0.0.1", "::1", "localhost"))  # ordered, unique
    server_cert = ca.issue_cert(*names)
    ca_path.parent.mkdir(parents=True, exist_ok=True)
    ca.cert_pem.write_to_path(str(ca_path))

    # The same settings hypercorn's Config.create_ssl_context uses (RFC 9113 §9.2).
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_COMPRESSION
    context.set_ciphers("ECDHE+AESGCM")
    context.set_alpn_protocols(["h2", "http/1.1"])
    server_cert.configure_cert(context)
    return context
