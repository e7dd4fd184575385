"""A host application for the host-token tests: it signs tokens with its own keys and
publishes their public halves as a JWKS over real HTTP on 127.0.0.1 (stdlib server in
a thread), counting the fetches, and can rotate its keys or stop answering."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://vie-scolaire.example"
AUDIENCE = "preau"

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def new_key(algorithm: str) -> PrivateKey:
    if algorithm == "RS256":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(key: PrivateKey, kid: str, algorithm: str) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    assert isinstance(jwk, dict)
    return {**jwk, "kid": kid, "alg": algorithm, "use": "sig"}


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_signed(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    """A token PyJWT would refuse to make (HS256 keyed with a public key; alg none)."""
    signing_input = (_b64(json.dumps(header).encode()) + "."
                     + _b64(json.dumps(claims).encode()))
    if header.get("alg") == "none":
        return signing_input + "."
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + _b64(signature)


class Host:
    """The host application: keys by kid (the published ones), and the JWKS server."""

    def __init__(self, algorithm: str = "RS256") -> None:
        self.algorithm = algorithm
        self.keys: dict[str, PrivateKey] = {}
        self.published: list[str] = []
        self.fetches = 0
        self.failing = False  # answer 503 instead of the key set
        self.body: bytes | None = None  # answer this instead of the key set
        self.url = ""

    def add_key(self, kid: str, *, publish: bool = True) -> PrivateKey:
        key = self.keys[kid] = new_key(self.algorithm)
        if publish:
            self.published.append(kid)
        return key

    def document(self) -> dict[str, Any]:
        return {"keys": [public_jwk(self.keys[k], k, self.algorithm) for k in self.published]}

    def token(self, user: str, now: datetime, *, kid: str = "k1",
              ttl: timedelta = timedelta(minutes=10), **claims: Any) -> str:
        """A token as the host mints it; ``claims`` override or add (``None`` drops one)."""
        body: dict[str, Any] = {"iss": ISSUER, "aud": AUDIENCE, "sub": user,
                                "iat": int(now.timestamp()), "nbf": int(now.timestamp()),
                                "exp": int((now + ttl).timestamp())}
        body.update(claims)
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, self.keys[kid], algorithm=self.algorithm,
                          headers={"kid": kid})



@contextmanager
def serving(host: Host) -> Iterator[Host]:
    """``host`` publishing its key set at ``host.url`` until the block ends."""
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            host.fetches += 1
            if host.failing or self.path != "/jwks.json":
                self.send_response(503 if host.failing else 404)
                self.end_headers()
                return
            data = host.body if host.body is not None else json.dumps(host.document()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host.url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    try:
        yield host
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def identity_toml(host: Host, school: str = "hugo", **extra: Any) -> str:
    """The ``[schools.<school>.tokens]`` section for ``host``."""
    lines = [f"[schools.{school}.tokens]", f'algorithm = "{host.algorithm}"',
             f'issuer = "{ISSUER}"', f'audience = "{AUDIENCE}"', f'jwks_url = "{host.url}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"
