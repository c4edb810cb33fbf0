"""cdktf app: one stack per environment (`recsys-dev`, `recsys-prod`), built from modules/environments.py.

Image tags are the commit the images were built from: IMAGE_TAG, else the checkout's HEAD commit.
"""

import os
import subprocess
import sys

from cdktf import App

from modules.environments import environments
from modules.errors import ConfigError
from modules.stack import RecsysStack


def image_tag() -> str:
    if tag := os.environ.get("IMAGE_TAG"):
        return tag
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], check=True, capture_output=True, text=True, cwd=os.path.dirname(__file__)
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        sys.exit("main.py: no image tag: set IMAGE_TAG to the commit hash the images were built from")


def main() -> None:
    app = App()
    try:
        for config in environments(image_tag()):
            RecsysStack(app, config)
    except ConfigError as error:
        sys.exit(f"main.py: {error}")
    app.synth()


if __name__ == "__main__":
    main()
