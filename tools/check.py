"""`make test` (and `make lint` / `make pytest`): the checks CI runs, independent stages overlapped, each timed.

Every stage starts at once; a command that reads synth's output (validate, checkov, the emulated deploy, the image
tests, but not the image build before them) waits until synth has succeeded. Each stage's output goes to
.cache/logs/<stage>.log and is printed whole when all are done, the test stages' last; the very last line adds up
every test stage's counts (CI reads it).
"""

import os
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
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
    # The image tests build and run containers (podman): a stage of their own, not split across xdist workers. The
    # build (base and both images, about two minutes of CPU cold) needs no synth output, so it starts at once, niced:
    # make test is CPU-bound on two cores, and at equal priority the build slowed synth (70 -> 118 s), which the
    # emulated deploy, the longest chain, waits for. Niced, it takes the cycles the others leave (the deploy mostly
    # waits on the provider). The tests then find every layer cached and run at normal priority (they time a stop).
    "images": [
        ["nice", "-n", "10", sys.executable, "-m", "tools.images.build"],
        [*PYTEST, "tests/image", "-p", "no:cacheprovider", "-rs", junit("images")],
    ],
}
TEST_STAGES = ("pytest", "deploy", "images")
# Each stage's first command that reads synth's output (cdktf.out): from there on the stage waits for synth to
# succeed, and stops when it failed.
READS_SYNTH = {"validate": 0, "checkov": 0, "deploy": 0, "images": 1}
FULL_RUN = ("synth", "lint", "pytest", "validate", "checkov", "deploy", "images")


@dataclass(frozen=True)
class Result:
    stage: str
    returncode: int
    seconds: float

    @property
    def log(self) -> Path:
        return LOGS / f"{self.stage}.log"


def run_stage(stage: str, synth: "Future[Result | None] | None" = None) -> Result | None:
    """Run the stage's commands in order until one fails. With `synth` (the synth stage's future), the commands
    from READS_SYNTH[stage] on wait for it, and the stage ends unreported (None) when synth failed."""
    started = time.monotonic()
    returncode = 0
    with (LOGS / f"{stage}.log").open("w") as log:
        for index, command in enumerate(STAGES[stage]):
            if synth is not None and index == READS_SYNTH.get(stage):
                synthesized = synth.result()
                if synthesized is None or synthesized.returncode != 0:
                    log.write("not run: synth failed\n")
                    return None
            log.write(f"$ {' '.join(Path(part).name if part.startswith('/') else part for part in command)}\n")
            log.flush()
            returncode = subprocess.run(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
            if returncode != 0:
                break
    result = Result(stage, returncode, time.monotonic() - started)
    print(f"  {stage:<9} {'ok' if returncode == 0 else 'FAILED':<6} {result.seconds:6.1f} s", flush=True)
    return result


def run_stages(stages: tuple[str, ...]) -> list[Result]:
    """Every stage at once; when synth is one of `stages`, the commands that read its output wait for it (and are
    not run, their stage not reported, when it failed)."""
    with ThreadPoolExecutor(max_workers=len(STAGES)) as pool:
        synth = pool.submit(run_stage, "synth") if "synth" in stages else None
        futures = {stage: pool.submit(run_stage, stage, synth) for stage in stages if stage != "synth"}
        if synth is not None:
            futures["synth"] = synth
        results = [futures[stage].result() for stage in stages]
    return [result for result in results if result is not None]


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


def images_margin(results: list[Result]) -> str | None:
    """When the image stage ended against the others: every stage starts at once, so its time is its end."""
    times = {result.stage: result.seconds for result in results}
    others = [seconds for stage, seconds in times.items() if stage != "images"]
    if "images" not in times or not others:
        return None
    margin = times["images"] - max(others)
    when = f"{margin:.0f} s after" if margin > 0 else f"{-margin:.0f} s before"
    return f"  images ended {when} the last other stage (its build runs niced beside them)"


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
    images_line = images_margin(results)
    if images_line:
        print(images_line)
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
