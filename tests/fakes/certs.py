"""A throwaway certificate authority and a server certificate for 127.0.0.1 / localhost.

Loopback fakes that speak TLS (the APNs fake) use these; a client trusts them through an
`ssl.SSLContext(cafile=...)` or through `SSL_CERT_FILE`, exactly as it would trust a private CA in production.
The certificates come from trustme, which makes them as a real CA would (key usages, key identifiers,
SANs): one maintained implementation instead of a hand-written copy per fake.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class CertPaths:
    ca_cert: Path
    server_cert: Path
    server_key: Path

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts only the test CA (hostname checks stay on)."""
        return ssl.create_default_context(cafile=str(self.ca_cert))

    def server_context(self, alpn: list[str] | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.server_cert), str(self.server_key))
        if alpn:
            ctx.set_alpn_protocols(alpn)
        return ctx


def localhost_ca() -> tuple[trustme.CA, trustme.LeafCert]:
    """A new CA (EC keys: fast to make) and its certificate for localhost and 127.0.0.1."""
    ca = trustme.CA(organization_name="securemsg tests")
    return ca, ca.issue_cert("localhost", "127.0.0.1")


def make_test_certs(directory: Path) -> CertPaths:
    """Write `ca.pem`, `server.pem` and `server-key.pem` into `directory` and return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, server = localhost_ca()
    paths = CertPaths(
        ca_cert=directory / "ca.pem",
        server_cert=directory / "server.pem",
        server_key=directory / "server-key.pem",
    )
    ca.cert_pem.write_to_path(str(paths.ca_cert))
    paths.server_cert.write_bytes(b"".join(pem.bytes() for pem in server.cert_chain_pems))
    paths.server_key.touch(0o600)
    server.private_key_pem.write_to_path(str(paths.server_key))
    return paths
