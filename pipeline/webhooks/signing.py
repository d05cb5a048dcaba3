"""Standard Webhooks signatures (www.standardwebhooks.com): the scheme Svix, Stripe-like receivers and the
spec's reference libraries verify.

A secret is `whsec_` + base64 of random bytes; the key is those bytes. A message carries `webhook-id` (stable
across retries, so a receiver can drop repeats), `webhook-timestamp` (seconds, so a receiver can refuse old
replays) and `webhook-signature`: `v1,` + base64 of HMAC-SHA256 over "id.timestamp.body".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets

from pipeline.errors import ConfigError

PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec asks for 24 to 64


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    """The HMAC key of a `whsec_...` secret; ConfigError when it is not one."""
    text = secret.strip()
    text = text[len(PREFIX) :] if text.startswith(PREFIX) else text
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) < 16:
        raise ConfigError("a webhook secret is whsec_ followed by base64 of at least 16 random bytes")
    return key


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(secret: str | None, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three webhook-* headers (no signature without a secret) and the JSON content type."""
    headers = {"Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(timestamp)}
    if secret:
        headers["webhook-signature"] = sign(secret, msg_id, timestamp, body)
    return headers
