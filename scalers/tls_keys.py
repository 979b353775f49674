"""Client keys given encrypted, as KEDA's ``keyPassword`` allows: decrypted in memory.

Python's ``ssl`` takes a key password only together with files; the scalers that build
their TLS context from PEM text (:func:`scalers.clients.tls_context`) decrypt the key here
first, once, when the trigger is parsed: a wrong password is a parse problem, as KEDA's
``NewTLSConfigWithPassword`` fails when the scaler is created.
"""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization


def decrypted_key(key: str, password: str) -> str:
    """The PEM private key ``key`` decrypted with ``password`` (PKCS#8, unencrypted);
    ``ValueError`` or ``TypeError`` when the password does not open it."""
    loaded = serialization.load_pem_private_key(key.encode(), password.encode())
    return loaded.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
