"""A small reader of multi-stage Dockerfiles: stages, their ancestry, and what a target image inherits."""

import re
from dataclasses import dataclass, field
from pathlib import Path

_FROM = re.compile(r"^(?:--\S+\s+)*(?P<image>\S+)(?:\s+AS\s+(?P<name>\S+))?$", re.IGNORECASE)


@dataclass
class Stage:
    name: str | None
    parent: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def instructions(path: Path) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction, continuation lines joined, comments dropped."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    text = "\n".join(lines).replace("\\\n", " ")
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if line:
            keyword, _, rest = line.partition(" ")
            found.append((keyword.upper(), " ".join(rest.split())))
    return found


def stages(path: Path) -> list[Stage]:
    found: list[Stage] = []
    for keyword, rest in instructions(path):
        if keyword == "FROM":
            match = _FROM.match(rest)
            if not match:
                raise ValueError(f"{path}: cannot read `FROM {rest}`")
            found.append(Stage(match["name"], match["image"]))
        elif found:
            found[-1].instructions.append((keyword, rest))
    return found


def external_bases(path: Path) -> list[str]:
    """Images the Dockerfile builds FROM that are not its own stages, in order of appearance."""
    names: set[str] = set()
    bases: list[str] = []
    for stage in stages(path):
        if stage.parent.lower() not in names and stage.parent not in bases:
            bases.append(stage.parent)
        if stage.name:
            names.add(stage.name.lower())
    return bases


def inherited(path: Path, target: str | None = None) -> list[tuple[str, str]]:
    """Every instruction that shapes the target's image (default: the last stage, docker build's default target),
    from its first ancestor stage down. Stages it only COPYs --from are not part of it."""
    all_stages = stages(path)
    by_name = {stage.name.lower(): stage for stage in all_stages if stage.name}
    stage = by_name[target.lower()] if target else all_stages[-1]
    chain = [stage]
    while stage.parent.lower() in by_name:
        stage = by_name[stage.parent.lower()]
        chain.append(stage)
    return [item for stage in reversed(chain) for item in stage.instructions]
