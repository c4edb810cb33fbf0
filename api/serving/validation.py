"""Request parsing that collects every bad field, so one 400 names all of them.

Types are those of the OpenAPI document, strictly: in a JSON body `k` is a JSON integer (not "5", 5.0 or 1e20) and
flags are JSON booleans; in a query string `k` is plain ASCII digits and flags are `true` or `false`. Anything a JSON
parser could turn into a server error (non-finite numbers, lone surrogates, deep nesting, huge numbers) is refused
here as a 400 naming the body.
"""

import json
import math
import re
from collections.abc import KeysView, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from werkzeug.datastructures import MultiDict

from api.serving.config import ApiConfig

QUERY_FLAGS = {"true": True, "false": False}
MAX_ID_LENGTH = 256
# Plain ASCII digits only: str.isdigit and int() also take fullwidth or Arabic-Indic digits, spaces and underscores.
QUERY_INTEGER = re.compile(r"[0-9]{1,9}", re.ASCII)
# The query string of nearly every GET: nothing, or k alone in plain digits.
PLAIN_K_QUERY = re.compile(r"(?:k=([0-9]{1,9}))?", re.ASCII)
# Well above any valid body (a flat object of lists); far below the depth where a recursive walk needs the C stack.
MAX_JSON_DEPTH = 32
JSON_BODY_PROBLEM = "must be a JSON object (Content-Type: application/json)"


@dataclass
class FieldProblems:
    details: list[dict[str, str]] = field(default_factory=list)

    def add(self, name: str, message: str) -> None:
        self.details.append({"field": name, "message": message})


class InvalidRequestError(Exception):
    def __init__(self, problems: FieldProblems) -> None:
        super().__init__("invalid request")
        self.details = problems.details


def parse_k(raw: Any, config: ApiConfig, name: str, problems: FieldProblems) -> int:
    """k from a JSON body: a JSON integer. Defaults to `default_k`, capped (not rejected) at `max_k`."""
    if raw is None:
        return config.default_k
    # bool is a subclass of int; JSON true is not a number.
    if isinstance(raw, bool) or not isinstance(raw, int):
        problems.add(name, "must be an integer")
        return config.default_k
    if raw < 1:
        problems.add(name, "must be at least 1")
    return max(1, min(raw, config.max_k))


def parse_query_k(raw: str | None, config: ApiConfig, name: str, problems: FieldProblems) -> int:
    """k from a query string: ASCII digits (at most 9; any larger value would be capped anyway)."""
    if raw is None:
        return config.default_k
    if raw.startswith("-") and QUERY_INTEGER.fullmatch(raw[1:]):
        problems.add(name, "must be at least 1")
        return config.default_k
    if not QUERY_INTEGER.fullmatch(raw):
        problems.add(name, "must be an integer written as ASCII digits, at most 9 of them")
        return config.default_k
    return parse_k(int(raw), config, name, problems)


def plain_query_k(query_string: str, config: ApiConfig) -> int | None:
    """k from a query string that is empty or exactly `k=<digits>` with a value of at least 1, as parse_query_k would
    read it; None for any other query string, which the general parser then reads (and names what is wrong).

    Werkzeug's query parsing (a MultiDict over parse_qsl) and the check of every allowed parameter cost about 4 us a
    request in a tight loop, a sixth of what the similar-items route added to `/health/live`'s cost (docs/api.md).
    """
    match = PLAIN_K_QUERY.fullmatch(query_string)
    if match is None:
        return None
    digits = match.group(1)
    if digits is None:
        return config.default_k
    value = int(digits)
    return min(value, config.max_k) if value >= 1 else None


def parse_flag(raw: Any, name: str, problems: FieldProblems, *, default: bool) -> bool:
    """A flag from a JSON body: JSON true or false."""
    if raw is None:
        return default
    if isinstance(raw, bool):
        return raw
    problems.add(name, "must be true or false")
    return default


def parse_query_flag(raw: str | None, name: str, problems: FieldProblems, *, default: bool) -> bool:
    if raw is None:
        return default
    if raw in QUERY_FLAGS:
        return QUERY_FLAGS[raw]
    problems.add(name, "must be true or false")
    return default


def parse_id_list(raw: Any, name: str, limit: int, problems: FieldProblems, *, required: bool = False) -> list[str]:
    if raw is None:
        if required:
            problems.add(name, "is required")
        return []
    if not isinstance(raw, list) or not all(isinstance(value, str) for value in raw):
        problems.add(name, "must be a list of id strings")
        return []
    if required and not raw:
        problems.add(name, "must not be empty")
    if len(raw) > limit:
        problems.add(name, f"has {len(raw)} entries; the maximum is {limit}")
    if any(not value or len(value) > MAX_ID_LENGTH for value in raw):
        problems.add(name, f"ids must be 1 to {MAX_ID_LENGTH} characters")
    elif not all(_encodable(value) for value in raw):
        problems.add(name, "ids must be valid Unicode text (no lone surrogates)")
    return raw


def check_id_text(value: str, name: str, problems: FieldProblems) -> None:
    """Path ids: at most MAX_ID_LENGTH characters and encodable (a lone surrogate is not)."""
    if len(value) > MAX_ID_LENGTH:
        problems.add(name, f"must be at most {MAX_ID_LENGTH} characters")
    elif not _encodable(value):
        problems.add(name, "must be valid Unicode text (no lone surrogates)")


def query_exclude(args: MultiDict[str, str], config: ApiConfig, problems: FieldProblems) -> list[str]:
    """`exclude` accepts comma-separated ids, repeated or not."""
    if "exclude" not in args:  # the common request: no list to build or check
        return []
    ids = [value for raw in args.getlist("exclude") for value in raw.split(",") if value]
    return parse_id_list(ids, "exclude", config.max_exclude_items, problems)


def reject_unknown(names: KeysView[str], allowed: frozenset[str], kind: str, problems: FieldProblems) -> None:
    if names <= allowed:  # the common request: a subset test, no set built or sorted
        return
    for name in sorted(set(names) - allowed):
        problems.add(name, f"unknown {kind}; allowed: {', '.join(sorted(allowed))}")


def json_object(mimetype: str, data: bytes, problems: FieldProblems) -> Mapping[str, Any]:
    """The request body as a JSON object, or a 400 naming `body` and what is wrong with it."""
    if mimetype != "application/json" and not (mimetype.startswith("application/") and mimetype.endswith("+json")):
        _refuse_body(problems, JSON_BODY_PROBLEM)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        _refuse_body(problems, "is not UTF-8")
    try:
        body = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys)
    except RecursionError:
        _refuse_body(problems, f"is nested deeper than {MAX_JSON_DEPTH} levels")
    except _BodyError as error:
        _refuse_body(problems, str(error))
    except ValueError as error:  # JSONDecodeError, and int() refusing a number of more than 4,300 digits
        _refuse_body(problems, f"is not valid JSON ({error})")
    if not isinstance(body, dict):
        _refuse_body(problems, JSON_BODY_PROBLEM)
    _check_tree(body, 1, problems)
    return body


class _BodyError(ValueError):
    pass


def _no_constant(name: str) -> NoReturn:
    raise _BodyError(f"contains {name}, which is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _BodyError(f"contains the number {text}, beyond the range of a double")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    body = dict(pairs)
    if len(body) != len(pairs):
        duplicated = sorted({key for key, _ in pairs if sum(1 for other, _ in pairs if other == key) > 1})
        raise _BodyError(f"repeats the key {duplicated[0]!r}; each key may appear once")
    return body


def _check_tree(value: Any, depth: int, problems: FieldProblems) -> None:
    """Depth and text: a lone surrogate ("\\ud800") decodes to a str that cannot be encoded as UTF-8 later."""
    if depth > MAX_JSON_DEPTH:
        _refuse_body(problems, f"is nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        if not _encodable(value):
            _refuse_body(problems, "contains a lone surrogate (\\ud800-\\udfff), which is not Unicode text")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_tree(key, depth, problems)
            _check_tree(item, depth + 1, problems)
    elif isinstance(value, list):
        for item in value:
            _check_tree(item, depth + 1, problems)


def _encodable(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refuse_body(problems: FieldProblems, message: str) -> NoReturn:
    problems.add("body", message)
    raise InvalidRequestError(problems)


def raise_if_any(problems: FieldProblems) -> None:
    if problems.details:
        raise InvalidRequestError(problems)
