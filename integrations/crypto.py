"""Encryption at rest for third-party secrets (Kommo tokens, channel secrets)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    """Authenticated symmetric encryption (Fernet: AES-128-CBC + HMAC-SHA256) with one key from settings."""

    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())

    def encrypt(self, plaintext: str) -> str:
        """Ciphertext safe to store in a text column."""
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        """Plaintext; raises ValueError if the value was not produced with this key or was altered."""
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("ciphertext cannot be decrypted with the configured key") from exc
