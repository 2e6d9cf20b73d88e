"""Endpoints from the command line or a config file, validated before any check."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Hashable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from requests.models import PreparedRequest

DEFAULT_ENDPOINTS = [
    f"https://api.github.com/repos/{repository}"
    for repository in (
        "python/cpython",
        "django/django",
        "pallets/flask",
        "psf/requests",
        "pydantic/pydantic",
        "dotflow-io/dotflow",
    )
]

DEFAULT_TIMEOUT_S = 5.0
DEFAULT_ATTEMPTS = 2
GITHUB_API_HOST = "api.github.com"

# Far beyond any real config (10,000 endpoints make about 50,000 values), yet
# small enough that YAML aliases cannot make a short file expand to billions
# of values, or loop into itself, when the document is walked.
MAX_DOCUMENT_VALUES = 1_000_000
MAX_DOCUMENT_DEPTH = 32

# RFC 9110: a field name is a token; a value may hold tabs but no other
# control character. CR or LF would let a value inject further headers.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_CONTROL_CHARACTER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_STATUS_CLASS = re.compile(r"^([1-5])xx$")
_STATUS_RANGE = re.compile(r"^(\d{3})\s*-\s*(\d{3})$")


class ConfigError(Exception):
    """Bad input: one line for the user, exit code 2."""


class Expectations(BaseModel):
    """What a healthy answer looks like, beyond "status below 400"."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    status: list[tuple[int, int]] | None = None
    max_response_time_ms: float | None = Field(default=None, gt=0, strict=True)
    body_contains: str | None = None
    json_values: dict[str, Any] | None = Field(default=None, alias="json")
    headers: dict[str, str] | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _status_ranges(cls, value: Any) -> list[tuple[int, int]] | None:
        if value is None:
            return None
        items = value if isinstance(value, list) else [value]
        if not items:
            raise ValueError("list at least one status, or leave status out")
        return [_status_range(item) for item in items]


class TLSOptions(BaseModel):
    """Certificate checks for https endpoints."""

    model_config = ConfigDict(extra="forbid")

    verify: bool = Field(default=True, strict=True)
    ca_bundle: str | None = None
    min_days_valid: int | None = Field(default=None, ge=0, strict=True)

    @field_validator("ca_bundle")
    @classmethod
    def _bundle_exists(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"CA bundle {value!r} is not a readable file")
        return value


class Endpoint(BaseModel):
    """One endpoint to check and what healthy means for it."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    url: str
    name: str = ""
    method: str = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    json_body: Any = Field(default=None, alias="json")
    # Strict: `timeout: true` or `retries: "3"` is a mistake, not a number.
    timeout_s: float = Field(
        default=DEFAULT_TIMEOUT_S, alias="timeout", gt=0, le=300, strict=True
    )
    attempts: int = Field(
        default=DEFAULT_ATTEMPTS, alias="retries", ge=1, le=10, strict=True
    )
    follow_redirects: bool = Field(default=True, strict=True)
    expect: Expectations = Field(default_factory=Expectations)
    tls: TLSOptions = Field(default_factory=TLSOptions)

    @field_validator("url")
    @classmethod
    def _url_is_checkable(cls, value: str) -> str:
        return validate_url(value)

    @field_validator("name")
    @classmethod
    def _name_is_one_line(cls, value: str) -> str:
        if _CONTROL_CHARACTER.search(value) or "\t" in value:
            raise ValueError("name has a control character")
        return value

    @field_validator("headers")
    @classmethod
    def _headers_are_sendable(cls, headers: dict[str, str]) -> dict[str, str]:
        # Checked after ${VAR} expansion. The message names the header but
        # never its value, which is often a secret.
        for name, value in headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"header name {name!r} is not an HTTP token")
            if not _sendable_header_value(value):
                raise ValueError(
                    f"header {name!r}: the value has a control character "
                    "(CR, LF, NUL or similar) or a character outside Latin-1"
                )
        return headers

    @field_validator("method")
    @classmethod
    def _method_is_a_token(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z]+", value):
            raise ValueError(f"method {value!r} is not an HTTP method")
        return value.upper()

    @model_validator(mode="after")
    def _fill_name_and_check_body(self) -> Endpoint:
        if not self.name:
            self.name = mask_url(self.url)
        if self.body is not None and self.json_body is not None:
            raise ValueError("give either body or json, not both")
        return self

    @property
    def display_url(self) -> str:
        return mask_url(self.url)

    def request_headers(self) -> dict[str, str]:
        """Headers to send, with GITHUB_TOKEN added for the GitHub API."""
        headers = dict(self.headers)
        token = os.environ.get("GITHUB_TOKEN")
        has_auth = any(key.lower() == "authorization" for key in headers)
        if token and not has_auth and urlsplit(self.url).hostname == GITHUB_API_HOST:
            headers["Authorization"] = f"Bearer {token}"
        return headers


def load_endpoints(urls: list[str], config_path: str | None) -> list[Endpoint]:
    """Endpoints from a config file, from URLs, or the embedded default."""
    if config_path:
        return load_config_file(config_path)
    entries: list[Any] = list(urls) if urls else list(DEFAULT_ENDPOINTS)
    return build_endpoints(entries, defaults={})


def load_config_file(path: str) -> list[Endpoint]:
    """Read a YAML or JSON file: a list of endpoints, or a mapping with `endpoints`."""
    document = _parse_document(path)
    _check_size(document, path)

    if isinstance(document, list):
        return build_endpoints(document, defaults={})
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a list of endpoints or a mapping")

    # In file order, not sorted: YAML keys may mix types that do not compare.
    unknown = [key for key in document if key not in ("endpoints", "defaults")]
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key {unknown[0]!r}")
    defaults = document.get("defaults") or {}
    if not isinstance(defaults, dict):
        raise ConfigError(f"{path}: defaults must be a mapping")
    _check_defaults(defaults, path)
    if "endpoints" not in document:
        raise ConfigError(f"{path}: missing the 'endpoints' list")
    if not isinstance(document["endpoints"], list):
        raise ConfigError(f"{path}: endpoints must be a list")
    return build_endpoints(document["endpoints"], defaults=defaults)


def build_endpoints(entries: Any, defaults: dict[str, Any]) -> list[Endpoint]:
    """Validate every entry; names must be unique."""
    if not isinstance(entries, list):
        raise ConfigError("endpoints must be a list")
    if not entries:
        raise ConfigError("no endpoints to check: the endpoint list is empty")

    endpoints = [
        _build_endpoint(position, entry, defaults)
        for position, entry in enumerate(entries, start=1)
    ]

    seen: dict[str, int] = {}
    for position, endpoint in enumerate(endpoints, start=1):
        if endpoint.name in seen:
            raise ConfigError(
                f"duplicate endpoint name {endpoint.name!r} (endpoints "
                f"{seen[endpoint.name]} and {position}; the same URL twice? "
                "give each a distinct name)"
            )
        seen[endpoint.name] = position
    return endpoints


def validate_url(url: str) -> str:
    """Accept only absolute http(s) URLs with a host; never guess a scheme."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        shown = parts.scheme or "none"
        raise ValueError(
            f"URL {mask_url(url)!r} needs an http or https scheme, got {shown}"
        )
    if not parts.hostname:
        raise ValueError(f"URL {mask_url(url)!r} has no host")

    # requests' own preparation catches bad ports and hosts that cannot be
    # encoded as IDNA, so such a URL fails here rather than mid-run.
    try:
        PreparedRequest().prepare_url(url, None)
        _ = parts.port
    except Exception as error:
        raise ValueError(f"URL {mask_url(url)!r} is not valid: {error}") from None
    return url


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    userinfo = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit(parts._replace(netloc=userinfo + host))


def _build_endpoint(position: int, entry: Any, defaults: dict[str, Any]) -> Endpoint:
    label = f"endpoint {position}"

    if isinstance(entry, str):
        entry = {"url": entry}
    if not isinstance(entry, dict):
        raise ConfigError(f"{label}: expected a URL or a mapping with 'url'")
    if "url" not in entry:
        raise ConfigError(f"{label}: missing 'url'")
    if isinstance(entry.get("name"), str):
        label = f"endpoint {entry['name']!r}"

    merged = _expand_env(_merge(defaults, entry), label)
    try:
        return Endpoint.model_validate(merged)
    except ValidationError as error:
        raise ConfigError(f"{label}: {_first_problem(error)}") from None


def _check_defaults(defaults: dict[str, Any], path: str) -> None:
    """Validate `defaults` on its own, so that a typo there is named as such.

    A placeholder URL stands in for the endpoints' own; `url` and `name`
    belong to each endpoint, not to the defaults.
    """
    for key in defaults:
        if key in ("url", "name"):
            raise ConfigError(f"{path}: defaults: {key}: set it on each endpoint")
    placeholder = {**defaults, "url": "http://defaults.invalid/"}
    try:
        Endpoint.model_validate(_expand_env(placeholder, "defaults"))
    except ValidationError as error:
        raise ConfigError(f"{path}: defaults: {_first_problem(error)}") from None


def _merge(defaults: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    """Endpoint values win; mappings such as headers merge one level deep."""
    merged = dict(defaults)
    for key, value in entry.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def _expand_env(value: Any, label: str) -> Any:
    """Replace ${VAR} in every string with the environment's value."""
    if isinstance(value, str):
        return _ENV_REFERENCE.sub(lambda match: _env(match.group(1), label), value)
    if isinstance(value, list):
        return [_expand_env(item, label) for item in value]
    if isinstance(value, dict):
        return {key: _expand_env(item, label) for key, item in value.items()}
    return value


def _env(name: str, label: str) -> str:
    if name not in os.environ:
        raise ConfigError(f"{label}: environment variable {name} is not set")
    return os.environ[name]


def _sendable_header_value(value: str) -> bool:
    """Tabs and printable Latin-1 only: what requests can put on the wire.

    str.isprintable() also refuses C1 controls such as U+0085 and Unicode
    line separators, which the ASCII control pattern alone lets through.
    """
    if _CONTROL_CHARACTER.search(value):
        return False
    if not value.replace("\t", " ").isprintable():
        return False
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _status_range(item: Any) -> tuple[int, int]:
    if isinstance(item, int) and not isinstance(item, bool) and 100 <= item <= 599:
        return (item, item)
    text = str(item).strip().lower()
    if match := _STATUS_CLASS.match(text):
        low = int(match.group(1)) * 100
        return (low, low + 99)
    if (match := _STATUS_RANGE.match(text)) and int(match[1]) <= int(match[2]):
        return (int(match[1]), int(match[2]))
    if text.isdigit() and 100 <= int(text) <= 599:
        return (int(text), int(text))
    raise ValueError(
        f"{item!r} is not a status, a class like 2xx or a range like 200-299"
    )


def _first_problem(error: ValidationError) -> str:
    problem = error.errors()[0]
    field = ".".join(str(part) for part in problem["loc"])
    message = problem["msg"].removeprefix("Value error, ")
    if problem["type"] == "extra_forbidden":
        message = "unknown key"
    return f"{field}: {message}" if field else message


def _check_size(document: Any, path: str) -> None:
    """Refuse documents too deep or too big, counting aliases as often as used."""
    pending = [(document, 1)]
    values_seen = 0
    while pending:
        value, depth = pending.pop()
        values_seen += 1
        if values_seen > MAX_DOCUMENT_VALUES:
            raise ConfigError(
                f"{path}: more than {MAX_DOCUMENT_VALUES:,} values once YAML "
                "aliases are expanded"
            )
        if depth > MAX_DOCUMENT_DEPTH:
            raise ConfigError(
                f"{path}: nested more than {MAX_DOCUMENT_DEPTH} levels deep "
                "(or an alias refers to itself)"
            )
        if isinstance(value, dict):
            pending.extend((item, depth + 1) for item in value.values())
        elif isinstance(value, list):
            pending.extend((item, depth + 1) for item in value)


def _parse_document(path: str) -> Any:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise ConfigError(f"cannot read config file {path}: {reason}") from None

    try:
        return _parse_text(text, path)
    except RecursionError:
        # Both parsers recurse once per nesting level.
        raise ConfigError(f"{path}: nested too deeply to read") from None


def _parse_text(text: str, path: str) -> Any:
    if path.lower().endswith(".json"):
        try:
            return json.loads(text, object_pairs_hook=_unique_keys(path))
        except json.JSONDecodeError as error:
            raise ConfigError(
                f"{path}: invalid JSON at line {error.lineno}: {error.msg}"
            ) from None
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        reason = getattr(error, "problem", None) or "malformed"
        raise ConfigError(f"{path}: invalid YAML{where}: {reason}") from None


def _unique_keys(path: str):
    """A json object_pairs_hook that refuses a key given twice in one object.

    Python's json keeps the last value silently, so a pasted block could
    quietly replace an endpoint's settings.
    """

    def pairs_to_dict(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        mapping: dict[str, Any] = {}
        for key, value in pairs:
            if key in mapping:
                raise ConfigError(f"{path}: duplicate key {key!r}")
            mapping[key] = value
        return mapping

    return pairs_to_dict


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's SafeLoader, but a key given twice in one mapping is an error.

    Merge keys (<<) may still be overridden, as YAML intends.
    """

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):
                continue  # the base constructor reports an unhashable key
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)
