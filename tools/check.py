"""`make test` (and `make lint` / `make pytest`): the checks CI runs, independent stages overlapped, each timed.

Synth runs first (validate, checkov, the emulated deploy and the image tests read its output); lint overlaps it; then
validate, checkov and pytest (itself parallel, pytest-xdist) run side by side. Each stage's output goes to
.cache/logs/<stage>.log and is printed whole when all are done, pytest's last (CI reads its closing line).
"""

import os
import subprocess
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOGS = ROOT / ".cache" / "logs"
BIN = Path(sys.executable).parent
# Two workers for two cores: most tests wait on processes (uWSGI, terraform, moto), so the suite overlaps well.
PYTEST_WORKERS = os.environ.get("PYTEST_WORKERS", "2")

STAGES: dict[str, list[list[str]]] = {
    "lint": [
        [str(BIN / "ruff"), "check", "."],
        [str(BIN / "ruff"), "format", "--check", "."],
        [str(BIN / "mypy")],
        [str(BIN / "lint-imports")],
        [str(BIN / "hadolint"), "api/Dockerfile", "logging/Dockerfile"],
    ],
    "synth": [[sys.executable, "-m", "tools.synth"]],
    "validate": [[sys.executable, "-m", "tools.terraform", "validate"]],
    "checkov": [[sys.executable, "-m", "tools.checkov_stacks"]],
    # The image tests build and run containers (podman): a stage of their own, not split across xdist workers.
    "pytest": [[sys.executable, "-m", "pytest", "-n", PYTEST_WORKERS, "--dist", "loadgroup", "--ignore=tests/image"]],
    "images": [[sys.executable, "-m", "pytest", "tests/image", "-p", "no:cacheprovider", "-rs"]],
}
# (first wave, second wave): the second starts when the first's `synth` has succeeded.
FULL_RUN = (("synth", "lint"), ("validate", "checkov", "pytest", "images"))


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


def run_waves(waves: tuple[tuple[str, ...], ...]) -> list[Result]:
    results: list[Result] = []
    with ThreadPoolExecutor(max_workers=len(STAGES)) as pool:
        for wave in waves:
            futures: list[Future[Result]] = [pool.submit(run_stage, stage) for stage in wave]
            results += [future.result() for future in futures]
            if any(result.returncode != 0 for result in results if result.stage == "synth"):
                break
    return results


def _print_log(result: Result) -> None:
    print(f"\n===== {result.stage} ({'ok' if result.returncode == 0 else 'FAILED'}, {result.seconds:.1f} s) =====")
    print(result.log.read_text(errors="replace"), end="", flush=True)


def report(results: list[Result], wall: float) -> int:
    """Every log, then the stage times, then pytest's log last: its closing line is the run's summary."""
    for result in results:
        if result.stage != "pytest":
            _print_log(result)
    failed = [result.stage for result in results if result.returncode != 0]
    print("\nstage times:")
    for result in results:
        print(f"  {result.stage:<9} {result.seconds:6.1f} s  {'ok' if result.returncode == 0 else 'FAILED'}")
    print(f"  {'wall':<9} {wall:6.1f} s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    for result in results:
        if result.stage == "pytest":
            _print_log(result)
    return 1 if failed else 0


def main(argv: list[str]) -> int:
    LOGS.mkdir(parents=True, exist_ok=True)
    unknown = [stage for stage in argv if stage not in STAGES]
    if unknown:
        print(f"unknown stage(s) {unknown}; choose from {sorted(STAGES)}", file=sys.stderr)
        return 2
    waves = ((*argv,),) if argv else FULL_RUN
    started = time.monotonic()
    return report(run_waves(waves), time.monotonic() - started)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
