"""An allauth MFA adapter that stores secrets sealed (Fernet under a fixed test key), as a
site that encrypts its allauth secrets would: the import must open them with it."""

from __future__ import annotations

from allauth.mfa.adapter import DefaultMFAAdapter
from cryptography.fernet import Fernet

KEY = Fernet.generate_key()


class SealingMFAAdapter(DefaultMFAAdapter):
    def encrypt(self, text: str) -> str:
        return Fernet(KEY).encrypt(text.encode()).decode()

    def decrypt(self, encrypted_text: str) -> str:
        return Fernet(KEY).decrypt(encrypted_text.encode()).decode()
