"""The OAuth credentials file: one pydantic model per entry, every problem named by entry and field, no value quoted.

A problem reads ``SIDECAR_OAUTH_CREDENTIALS_FILE: entry N (write key hash H): field: problem``. The model hides its
input in errors (``hide_input_in_errors``), and the messages below are built from each error's type and location
only, so neither a private key nor a write key can reach a log or the terminal through a validation message.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import yaml
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints, ValidationError
from pydantic_core import ErrorDetails

from sidecar.config import variable_name
from sidecar.errors import ConfigError
from sidecar.model import Region, write_key_hash

FILE_VARIABLE = variable_name("oauth_credentials_file")
MIN_RSA_BITS = 2048

_FIELDS = ("client_id", "key_id", "private_key", "region")
_HASH = re.compile(r"^[0-9a-f]{12}$")
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


@dataclass(frozen=True, slots=True)
class OAuthCredentials:
    """One source's OAuth app: the client and key that sign the assertion, and the region its tokens are valid in."""

    client_id: str
    key_id: str
    region: Region
    private_key: RSAPrivateKey = field(repr=False, compare=False)
    fingerprint: str = field(repr=False)
    """A digest of all four values: a reload drops a key's token only when this changes."""


def _region(value: Any) -> Any:
    """``US``/``EU`` in any case; anything else is refused without quoting it."""
    if isinstance(value, str) and value.strip().lower() in {r.value for r in Region}:
        return Region(value.strip().lower())
    raise ValueError("must be US or EU")


def _private_key(value: Any) -> RSAPrivateKey:
    """An unencrypted PKCS#8 RSA key of at least 2048 bits; the error never quotes the value."""
    if not isinstance(value, str) or "-----BEGIN" not in value:
        raise ValueError("must be a PEM block (-----BEGIN PRIVATE KEY----- ...), PKCS#8")
    pem = value
    if "\n" not in pem.strip() and "\\n" in pem:
        pem = pem.replace("\\n", "\n")  # pasted with escaped line breaks, as in an environment variable
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except TypeError:
        raise ValueError("the key is encrypted; give it unencrypted, as Segment issues it") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ValueError("not a readable PEM private key (PKCS#8, as Segment issues it)") from None
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("must be an RSA key (assertions are signed RS256)")  # noqa: TRY004 - reported, not raised on
    if key.key_size < MIN_RSA_BITS:
        raise ValueError(f"an RSA key of {key.key_size} bits; RS256 needs at least {MIN_RSA_BITS}")
    return key


_Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class _Entry(BaseModel):
    """One entry of the file, as written."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, hide_input_in_errors=True, arbitrary_types_allowed=True, strict=True
    )

    client_id: _Name
    key_id: _Name
    region: Annotated[Region, BeforeValidator(_region)]
    private_key: Annotated[RSAPrivateKey, BeforeValidator(_private_key)]

    def credentials(self) -> OAuthCredentials:
        """The validated entry, with the fingerprint a reload compares."""
        der = self.private_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        names = "\0".join((self.client_id, self.key_id, self.region.value)).encode()
        digest = hashlib.sha256(names + der).hexdigest()
        return OAuthCredentials(self.client_id, self.key_id, self.region, self.private_key, digest)


def _problem(error: ErrorDetails) -> str:
    """One validation error in words, from its type and location (never its input)."""
    kind = error["type"]
    name = str(error["loc"][0]) if error["loc"] else ""
    if kind == "model_type":
        return "must be an object with client_id, key_id, private_key and region"
    if kind == "extra_forbidden":
        shown = repr(name) if _PLAIN_NAME.match(name) else "(not shown)"
        return f"unknown field {shown}; expected {', '.join(_FIELDS)}"
    if kind == "missing":
        return f"{name}: missing"
    if kind == "value_error":
        return f"{name}: {error['msg'].removeprefix('Value error, ')}"
    if kind in ("string_type", "string_too_short"):
        return f"{name}: must be a non-empty string"
    return f"{name}: invalid ({kind})"


def _entry_name(index: int, key: str) -> str:
    hashed = key if _HASH.match(key) else write_key_hash(key)
    return f"entry {index} (write key hash {hashed})"


def load_credentials(path: Path) -> dict[str, OAuthCredentials]:
    """Read and validate a credentials file; raise :class:`ConfigError` naming every problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError([f"{FILE_VARIABLE}: {path} is not UTF-8 text"]) from None
    except OSError as exc:
        raise ConfigError([f"{FILE_VARIABLE}: cannot read {path}: {exc.strerror or type(exc).__name__}"]) from None
    is_json = path.suffix.lower() == ".json" or (
        path.suffix.lower() not in (".yaml", ".yml") and text.lstrip().startswith("{")
    )
    return parse_credentials(text, "json" if is_json else "yaml")


def parse_credentials(text: str, fmt: str = "json") -> dict[str, OAuthCredentials]:
    """Parse a credentials document (``fmt`` is ``json`` or ``yaml``) into credentials per write key (or hash).

    Raises :class:`ConfigError` listing every bad entry as ``entry N (write key hash H): field: problem``; no value
    from the file is ever quoted, so no key material can leak through the message.
    """
    document = _decode(text, fmt)
    if not isinstance(document, dict):
        raise ConfigError([f"{FILE_VARIABLE}: the file must hold an object mapping write keys to credentials"])
    problems: list[str] = []
    found: dict[str, OAuthCredentials] = {}
    for index, (key, entry) in enumerate(document.items(), start=1):
        if not isinstance(key, str) or not key.strip():
            problems.append(f"{FILE_VARIABLE}: entry {index}: the write key must be a non-empty string")
            continue
        try:
            found[key] = _Entry.model_validate(entry).credentials()
        except ValidationError as exc:
            problems += [f"{FILE_VARIABLE}: {_entry_name(index, key)}: {_problem(e)}" for e in exc.errors()]
    positions = {key: index for index, key in enumerate(document, start=1)}
    for key in found:
        if not _HASH.match(key) and write_key_hash(key) in found:
            other = positions[write_key_hash(key)]
            problems.append(
                f"{FILE_VARIABLE}: {_entry_name(positions[key], key)}: listed again by its hash in entry {other}"
            )
    if problems:
        raise ConfigError(problems)
    return found


def _decode(text: str, fmt: str) -> Any:
    """The parsed document; parser errors are reported by position only (YAML's would quote the file)."""
    if not text.strip():
        raise ConfigError([f"{FILE_VARIABLE}: the file is empty (write {{}} for no credentials)"])
    try:
        return json.loads(text) if fmt == "json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        raise ConfigError([f"{FILE_VARIABLE}: not valid JSON ({where}: {exc.msg})"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError([f"{FILE_VARIABLE}: not valid YAML{where}"]) from None


def file_signature(path: Path) -> tuple[int, int, int] | None:
    """What tells a changed file apart: mtime, size and inode (a Kubernetes secret update swaps a symlink)."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)
