"""Container liveness probe without curl: `python -m api.serving.healthcheck` exits 0 when the app answers, else 1."""

import sys
import urllib.request

from api.contract import APP_PORT, LIVENESS_PATH

TIMEOUT_SECONDS = 2.0


def probe(url: str = f"http://127.0.0.1:{APP_PORT}{LIVENESS_PATH}") -> bool:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
            return bool(response.status == 200)
    except OSError:
        return False


if __name__ == "__main__":
    sys.exit(0 if probe() else 1)
