"""What a stored field may hold, checked every time a record is read.

Records in KV can be written by anyone with write access to the prefix (an
operator through the KV API, not only through ``azsidecar``), and their
fields end up in runners' shells (``ARM_*`` variables). So a field is checked
when it is read, not only when the CLI writes it: a GUID is a GUID, a secret
is the alphabet Azure uses, a name is a safe path segment. A failed check
names the field and where it was read from, never the value (which may be a
secret or an attacker's payload).
"""

from __future__ import annotations

import re

from sidecar.errors import InvalidRecord

__all__ = ["InvalidRecord"]

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
#: Azure client secrets are letters, digits and ``~._-``; a little wider for other issuers,
#: but never quotes, whitespace, ``$``, backticks or anything else a shell interprets.
_SECRET = re.compile(r"[A-Za-z0-9~._+/=-]{1,1024}")
#: Key ids are GUIDs from Azure; tests and older records use short tokens of the same alphabet.
_TOKEN = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def _bad(where: str, field: str, expected: str) -> InvalidRecord:
    return InvalidRecord(
        f"{where}: field {field} is not {expected}; the record was not written by azsidecar"
        " or was altered: correct it with the azsidecar CLI"
    )


def guid(value: object, where: str, field: str) -> str:
    if not isinstance(value, str) or not _GUID.fullmatch(value):
        raise _bad(where, field, "a GUID")
    return value


def optional_guid(value: object, where: str, field: str) -> str | None:
    if value is None or value == "":
        return None
    return guid(value, where, field)


def guid_or_empty(value: object, where: str, field: str) -> str:
    """Ids an integration gets only once Graph has created its application."""
    if value == "":
        return ""
    return guid(value, where, field)


def name(value: object, where: str, field: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value) or ".." in value:
        raise _bad(where, field, "a name (letters, digits, '.', '_', '-')")
    return value


def optional_name(value: object, where: str, field: str) -> str | None:
    if value is None or value == "":
        return None
    return name(value, where, field)


def secret_text(value: object, where: str, field: str) -> str:
    if not isinstance(value, str) or not _SECRET.fullmatch(value):
        raise _bad(where, field, "a client secret (letters, digits, '~._+/=-')")
    return value


#: Base64 (standard alphabet, padded): a PKCS#12 bundle of a few kilobytes.
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4}){1,16384}(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def base64_text(value: object, where: str, field: str) -> str:
    if not isinstance(value, str) or not _BASE64.fullmatch(value):
        raise _bad(where, field, "base64 of at most 48 KiB")
    return value


def token(value: object, where: str, field: str) -> str:
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise _bad(where, field, "an id (letters, digits, '._:-')")
    return value


def printable(value: object, where: str, field: str, limit: int = 256) -> str:
    if not isinstance(value, str) or not value.isprintable() or len(value) > limit:
        raise _bad(where, field, f"printable text of at most {limit} characters")
    return value


def one_of(value: object, allowed: tuple[str, ...], where: str, field: str) -> str:
    if value not in allowed:
        raise _bad(where, field, "one of " + ", ".join(allowed))
    return str(value)
