"""The one error type raised for bad configuration or construct props."""


class ConfigError(ValueError):
    """A config value or construct prop is invalid; raised before any resource is created.

    The message names the offending field, what is wrong with the value and how to fix it, and lists every
    problem found rather than stopping at the first.
    """

    def __init__(self, owner: str, problems: list[tuple[str, str, str]]) -> None:
        self.problems = tuple(problems)
        lines = [f"  {owner}.{field}: {problem}; fix: {fix}" for field, problem, fix in problems]
        noun = "problem" if len(problems) == 1 else "problems"
        super().__init__(f"invalid {owner} ({len(problems)} {noun}):\n" + "\n".join(lines))


class Problems:
    """Collects validation problems so that one ConfigError reports all of them."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self._found: list[tuple[str, str, str]] = []

    def check(self, ok: bool, field: str, problem: str, fix: str) -> None:
        if not ok:
            self._found.append((field, problem, fix))

    def raise_if_any(self) -> None:
        if self._found:
            raise ConfigError(self.owner, self._found)
