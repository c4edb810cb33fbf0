"""What the bench tools over one model directory share on their command lines."""

import argparse
from pathlib import Path


def model_parser(prog: str, doc: str, *, rounds: int) -> argparse.ArgumentParser:
    """`--model` (required) and `--rounds`; the description is the module docstring's first line."""
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n", 1)[0])
    parser.add_argument("--model", type=Path, required=True, help="a model directory (MODEL_DIR) with `current`")
    parser.add_argument("--rounds", type=int, default=rounds)
    return parser


def require_at_least_one(parser: argparse.ArgumentParser, args: argparse.Namespace, *names: str) -> None:
    """A usage error naming the options when any of these counts is below 1."""
    if any(getattr(args, name) < 1 for name in names):
        options = " and ".join(f"--{name.replace('_', '-')}" for name in names)
        parser.error(f"{options} must be at least 1")
