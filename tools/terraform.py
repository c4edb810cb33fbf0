"""Terraform on the synthesized stacks, offline through a local provider mirror when the machine has one.

`python -m tools.terraform validate` runs `init -backend=false` + `validate` in every stack of cdktf.out.
"""

import argparse
import os
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STACKS = ROOT / "cdktf.out" / "stacks"
CLI_CONFIG = ROOT / ".cache" / "terraform.rc"
PROVIDER_BINARY = "terraform-provider-aws_v5.100.0*"
# Where machine images of this project keep the mirror; searched before a slower scan of /opt and /usr.
KNOWN_MIRRORS = (Path("/opt/tf-plugins"),)
REGISTRY = ("registry.terraform.io", 443)


class TerraformSetupError(RuntimeError):
    """Terraform cannot run here; the message says what is missing and how to provide it."""


def find_mirror() -> Path | None:
    """The filesystem mirror holding hashicorp/aws 5.100.0: TF_PROVIDER_MIRROR, a known path, or a scan."""
    candidates = [Path(os.environ["TF_PROVIDER_MIRROR"])] if os.environ.get("TF_PROVIDER_MIRROR") else []
    candidates += [*KNOWN_MIRRORS, Path("/opt"), Path("/usr/local/share"), Path("/usr/share")]
    for base in candidates:
        if not base.is_dir():
            continue
        for binary in base.glob(f"**/registry.terraform.io/hashicorp/aws/5.100.0/*/{PROVIDER_BINARY}"):
            return binary.parents[5]
    return None


def registry_reachable(timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection(REGISTRY, timeout=timeout):
            return True
    except OSError:
        return False


def environment() -> dict[str, str]:
    """The environment for terraform: a CLI config pointing at the mirror (written here), or the registry."""
    env = dict(os.environ, CHECKPOINT_DISABLE="1", TF_IN_AUTOMATION="1")
    mirror = find_mirror()
    if mirror is not None:
        CLI_CONFIG.parent.mkdir(parents=True, exist_ok=True)
        CLI_CONFIG.write_text(
            "provider_installation {\n"
            f'  filesystem_mirror {{\n    path    = "{mirror}"\n    include = ["registry.terraform.io/*/*"]\n  }}\n'
            '  direct {\n    exclude = ["registry.terraform.io/*/*"]\n  }\n'
            "}\n"
        )
        env["TF_CLI_CONFIG_FILE"] = str(CLI_CONFIG)
        # The plugin cache would only copy what the mirror already holds on disk.
        env.pop("TF_PLUGIN_CACHE_DIR", None)
    elif not registry_reachable():
        raise TerraformSetupError(
            "no hashicorp/aws 5.100.0 provider mirror on this machine and registry.terraform.io is unreachable; "
            "fix: set TF_PROVIDER_MIRROR to a filesystem mirror directory (the one holding registry.terraform.io/) "
            "or allow HTTPS to the Terraform registry"
        )
    return env


def stack_dirs() -> list[Path]:
    dirs = sorted(p for p in STACKS.glob("*") if (p / "cdk.tf.json").is_file())
    if not dirs:
        raise TerraformSetupError(f"no synthesized stacks in {STACKS}; fix: run `make synth` first")
    return dirs


def run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["terraform", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)


def validate() -> int:
    env = environment()
    failed = 0
    for stack in stack_dirs():
        for args in (["init", "-backend=false", "-input=false", "-no-color"], ["validate", "-no-color"]):
            result = run(args, stack, env)
            if result.returncode != 0:
                print(f"FAIL {stack.name}: terraform {args[0]}\n{result.stdout}{result.stderr}", file=sys.stderr)
                failed += 1
                break
        else:
            print(f"ok   {stack.name}: {result.stdout.strip().splitlines()[-1]}")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["validate"])
    parser.parse_args()
    try:
        return validate()
    except TerraformSetupError as error:
        print(f"terraform: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
