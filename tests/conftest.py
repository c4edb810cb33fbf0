"""Keeps each expensive module- or session-scoped fixture on one pytest-xdist worker (`--dist loadgroup`).

Under plain load distribution both workers ran the emulated deploy's module fixture (about 150 s of terraform and
moto each) and both synthesized the stacks for tests/infra; grouped, each runs once and the rest of the suite
spreads over the other worker. The groups are collected first: xdist hands out work in collection order, and the
emulated deploy (mostly waiting on the provider's waiters) is the suite's longest single unit, so it must start first.
"""

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
GROUPS = {
    TESTS / "deploy" / "test_emulated_deploy.py": "emulated-deploy",
    TESTS / "infra": "synthesized-stacks",
}


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups in its own hook
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    order = list(GROUPS.values())
    rank: dict[str, int] = {}
    for item in items:
        path = Path(item.path)
        for where, group in GROUPS.items():
            if path == where or where in path.parents:
                item.add_marker(pytest.mark.xdist_group(group))
                rank[item.nodeid] = order.index(group)
    items.sort(key=lambda item: rank.get(item.nodeid, len(order)))  # stable: the rest keeps its order
