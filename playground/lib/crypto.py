"""Provider keys at rest: MultiFernet, so the encryption key can rotate.

FIELD_ENCRYPTION_KEYS lists keys newest first: encryption uses the first,
decryption tries each. A token no key can open raises CredentialError, and
no provider call is made with garbage (fail closed).
"""

from functools import cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class CredentialError(Exception):
    pass


@cache
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in keys])
    except (ValueError, TypeError) as e:
        raise CredentialError("FIELD_ENCRYPTION_KEYS holds a malformed key") from e


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.FIELD_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return fernet().decrypt(token.encode()).decode()
    except InvalidToken:
        raise CredentialError(
            "A stored provider key cannot be decrypted with the configured "
            "FIELD_ENCRYPTION_KEYS; a team owner must enter it again."
        ) from None


def rotate(token: str) -> str:
    return fernet().rotate(token.encode()).decode()
