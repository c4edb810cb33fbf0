"""`make checkov`: checkov over each synthesized stack, with the skips and reasons of .checkov.yaml.

CKV2_AWS_28 (an internet-facing ALB without a web application firewall) is checked on every stack that has a web
ACL association and skipped only on stacks whose environment turns WAF off (modules/environments.py). checkov's
--skip-check replaces the config file's list, so the list is passed whole.
"""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKOV = ROOT / ".cache" / "tools" / "checkov" / "bin" / "checkov"
CONFIG = ROOT / ".checkov.yaml"
STACKS = ROOT / "cdktf.out" / "stacks"
WAF_CHECK = "CKV2_AWS_28"


def configured_skips(config: str) -> list[str]:
    return re.findall(r"^\s+- (CKV[0-9A-Z_]+)\b", config, flags=re.MULTILINE)


def skips_for(stack: Path, skips: list[str]) -> list[str]:
    has_web_acl = '"aws_wafv2_web_acl_association"' in (stack / "cdk.tf.json").read_text()
    return skips if has_web_acl else [*skips, WAF_CHECK]


def main() -> int:
    skips = configured_skips(CONFIG.read_text())
    failed = []
    for stack in sorted(path for path in STACKS.iterdir() if path.is_dir()):
        stack_skips = skips_for(stack, skips)
        print(f"checkov {stack.relative_to(ROOT)} ({WAF_CHECK} {'skipped' if WAF_CHECK in stack_skips else 'checked'})")
        command = [str(CHECKOV), "--config-file", str(CONFIG), "--skip-check", ",".join(stack_skips), "-d", str(stack)]
        if subprocess.run(command, cwd=ROOT, check=False).returncode != 0:
            failed.append(stack.name)
    if failed:
        print(f"checkov failed for {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
