"""Request parsing that collects every bad field, so one 400 names all of them."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from api.serving.config import ApiConfig

TRUE_WORDS = frozenset({"true", "1", "yes"})
FALSE_WORDS = frozenset({"false", "0", "no"})
MAX_ID_LENGTH = 256


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
    """k defaults to `default_k` and is capped (not rejected) at `max_k`; the response reports the k used."""
    if raw is None:
        return config.default_k
    if isinstance(raw, bool):
        problems.add(name, "must be an integer")
        return config.default_k
    try:
        value = int(raw)
    except (TypeError, ValueError):
        problems.add(name, "must be an integer")
        return config.default_k
    if isinstance(raw, float) and raw != value:
        problems.add(name, "must be an integer")
    if value < 1:
        problems.add(name, "must be at least 1")
    return min(value, config.max_k)


def parse_flag(raw: Any, name: str, problems: FieldProblems, *, default: bool) -> bool:
    if raw is None:
        return default
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.lower() in TRUE_WORDS | FALSE_WORDS:
        return raw.lower() in TRUE_WORDS
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
    return raw


def query_exclude(args: MultiDict[str, str], config: ApiConfig, problems: FieldProblems) -> list[str]:
    """`exclude` accepts comma-separated ids, repeated or not."""
    ids = [value for raw in args.getlist("exclude") for value in raw.split(",") if value]
    return parse_id_list(ids, "exclude", config.max_exclude_items, problems)


def reject_unknown(names: Any, allowed: frozenset[str], kind: str, problems: FieldProblems) -> None:
    for name in sorted(set(names) - allowed):
        problems.add(name, f"unknown {kind}; allowed: {', '.join(sorted(allowed))}")


def json_object(body: Any, problems: FieldProblems) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        problems.add("body", "must be a JSON object (Content-Type: application/json)")
        raise InvalidRequestError(problems)
    return body


def raise_if_any(problems: FieldProblems) -> None:
    if problems.details:
        raise InvalidRequestError(problems)
