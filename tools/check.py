"""`make test` (and `make lint` / `make pytest`): the checks CI runs, independent stages overlapped, each timed.

Lint, synth and the bulk of pytest (itself parallel, pytest-xdist) start at once; validate, checkov, the emulated
deploy and the image tests read synth's output, so they start as soon as synth has succeeded. Each stage's output
goes to .cache/logs/<stage>.log and is printed whole when all are done, the test stages' last; the very last line
adds up every test stage's counts (CI reads it).
"""

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / ".cache" / "logs"
BIN = Path(sys.executable).parent
# Two workers for two cores: most tests wait on processes (uWSGI, terraform, moto), so the suite overlaps well.
PYTEST_WORKERS = os.environ.get("PYTEST_WORKERS", "2")
PYTEST = [sys.executable, "-m", "pytest"]
EMULATED_DEPLOY = "tests/deploy/test_emulated_deploy.py"


def junit(stage: str) -> str:
    return f"--junitxml={LOGS / f'{stage}.xml'}"


STAGES: dict[str, list[list[str]]] = {
    "lint": [
        [str(BIN / "ruff"), "check", "."],
        [str(BIN / "ruff"), "format", "--check", "."],
        [str(BIN / "mypy")],
        [str(BIN / "lint-imports")],
        [str(BIN / "hadolint"), "api/Dockerfile", "logging/Dockerfile"],
    ],
    # --no-baseline: the bare provider-import timing is `make synth`'s benchmark, not a check.
    "synth": [[sys.executable, "-m", "tools.synth", "--no-baseline"]],
    "validate": [[sys.executable, "-m", "tools.terraform", "validate"]],
    "checkov": [[sys.executable, "-m", "tools.checkov_stacks"]],
    "pytest": [
        [
            *PYTEST,
            "-n",
            PYTEST_WORKERS,
            "--dist",
            "loadgroup",
            f"--ignore={EMULATED_DEPLOY}",
            "--ignore=tests/image",
            junit("pytest"),
        ]
    ],
    # The emulated deploy applies the stack synth wrote (about 150 s, mostly the provider's waiters): it starts when
    # synth is done, beside the rest of pytest, instead of waiting for it.
    "deploy": [[*PYTEST, EMULATED_DEPLOY, "-p", "no:cacheprovider", junit("deploy")]],
    # The image tests build and run containers (podman): a stage of their own, not split across xdist workers.
    "images": [[*PYTEST, "tests/image", "-p", "no:cacheprovider", "-rs", junit("images")]],
}
TEST_STAGES = ("pytest", "deploy", "images")
NEEDS_SYNTH = frozenset({"validate", "checkov", "deploy", "images"})
FULL_RUN = ("synth", "lint", "pytest", "validate", "checkov", "deploy", "images")


@dataclass(frozen=True)
class Result:
    stage: str
    returncode: int
    seconds: float

    @property
    def log(self) -> Path:
        return LOGS / f"{self.stage}.log"


def run_stage(stage: str) -> Result:
    started = time.monotonic()
    returncode = 0
    with (LOGS / f"{stage}.log").open("w") as log:
        for command in STAGES[stage]:
            log.write(f"$ {' '.join(Path(part).name if part.startswith('/') else part for part in command)}\n")
            log.flush()
            returncode = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
            if returncode != 0:
                break
    result = Result(stage, returncode, time.monotonic() - started)
    print(f"  {stage:<9} {'ok' if returncode == 0 else 'FAILED':<6} {result.seconds:6.1f} s", flush=True)
    return result


def run_stages(stages: tuple[str, ...]) -> list[Result]:
    """Every stage at once, except that those in NEEDS_SYNTH wait for synth when it is one of `stages` (and are
    skipped when it failed)."""
    waiting = [stage for stage in stages if stage in NEEDS_SYNTH and "synth" in stages]
    with ThreadPoolExecutor(max_workers=len(STAGES)) as pool:
        futures = {stage: pool.submit(run_stage, stage) for stage in stages if stage not in waiting}
        if waiting and futures["synth"].result().returncode == 0:
            futures.update({stage: pool.submit(run_stage, stage) for stage in waiting})
        return [futures[stage].result() for stage in stages if stage in futures]


def test_counts(results: list[Result]) -> str:
    """One closing line over every test stage's JUnit report: `total: N passed, N failed, N skipped`."""
    passed = failed = skipped = 0
    for result in results:
        report = LOGS / f"{result.stage}.xml"
        if result.stage not in TEST_STAGES or not report.is_file():
            continue
        for suite in ElementTree.parse(report).getroot().iter("testsuite"):
            tests, skips = int(suite.get("tests", 0)), int(suite.get("skipped", 0))
            failures = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
            passed, failed, skipped = passed + tests - skips - failures, failed + failures, skipped + skips
    return f"total: {passed} passed, {failed} failed, {skipped} skipped"


def _print_log(result: Result) -> None:
    print(f"\n===== {result.stage} ({'ok' if result.returncode == 0 else 'FAILED'}, {result.seconds:.1f} s) =====")
    print(result.log.read_text(errors="replace"), end="", flush=True)


def report(results: list[Result], wall: float) -> int:
    """Every log, the test stages' last, then the stage times and the tests' total (CI reads the closing line)."""
    ordered = sorted(results, key=lambda result: result.stage in TEST_STAGES)
    for result in ordered:
        _print_log(result)
    failed = [result.stage for result in results if result.returncode != 0]
    print("\nstage times:")
    for result in results:
        print(f"  {result.stage:<9} {result.seconds:6.1f} s  {'ok' if result.returncode == 0 else 'FAILED'}")
    print(f"  {'wall':<9} {wall:6.1f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    if any(result.stage in TEST_STAGES for result in results):
        print(test_counts(results), flush=True)
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    LOGS.mkdir(parents=True, exist_ok=True)
    unknown = [stage for stage in argv if stage not in STAGES]
    if unknown:
        print(f"unknown stage(s) {unknown}; choose from {sorted(STAGES)}", file=sys.stderr)
        return 2
    for stage in TEST_STAGES:
        (LOGS / f"{stage}.xml").unlink(missing_ok=True)  # a count is only ever this run's
    started = time.monotonic()
    return report(run_stages(tuple(argv) or FULL_RUN), time.monotonic() - started)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
