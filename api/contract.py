"""Values the API shares with the infrastructure and the log router.

Defined here once; `modules/` (task definition, target group, access point), `logging/` (health-check filter,
level routing) and the API's own files (uwsgi.ini, Dockerfile) are held to them by contract tests. This module
must stay import-light: the infrastructure imports it without the API's runtime dependencies.
"""

from typing import Final

APP_PORT: Final = 8080
LIVENESS_PATH: Final = "/health/live"
READINESS_PATH: Final = "/health/ready"

# Name of the environment variable that points the app at its model directory, and where the task definition
# mounts the EFS access point (read-only) inside the container.
MODEL_DIR_ENV: Final = "MODEL_DIR"
CONTAINER_MODEL_DIR: Final = "/mnt/models"
# The symlink inside the model directory that names the version to serve; the trainer switches it atomically.
CURRENT_POINTER: Final = "current"

# Number of uWSGI workers: the task definition sets it from the task's vCPUs, uwsgi.ini reads it.
WORKERS_ENV: Final = "APP_WORKERS"

# The container health check (task definition `healthCheck`); the image runs it with its own Python.
HEALTHCHECK_COMMAND: Final = ("python", "-m", "api.serving.healthcheck")

# The image's non-root user; the EFS access point's POSIX user and the task definition's `user` use the same ids.
APP_UID: Final = 10001
APP_GID: Final = 10001

# The container runs with a read-only root file system; these are the only paths it writes to.
WRITABLE_PATHS: Final = ("/tmp",)

# uWSGI lets in-flight requests finish for this long after SIGTERM; the task definition's stopTimeout is larger.
SHUTDOWN_GRACE_SECONDS: Final = 25
# After the drain (bounded by SHUTDOWN_GRACE_SECONDS), uWSGI gives each worker at most this long to finish its
# request (uwsgi.ini reload-mercy / worker-reload-mercy). The app's worst-case stop is the sum of the two; the task
# definition's stopTimeout covers it (tests/infra holds uwsgi.ini and the task definition to these values).
WORKER_MERCY_SECONDS: Final = 25

# One JSON object per line on stdout. Every record has the base fields; request records add the request fields.
LOG_BASE_FIELDS: Final = ("time", "level", "logger", "message")
LOG_REQUEST_FIELDS: Final = ("request_id", "method", "path", "status", "duration_ms", "model_version")
# Levels the app emits, lowest to highest; the router sends URGENT_LOG_LEVELS to CloudWatch Logs.
LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
URGENT_LOG_LEVELS: Final = ("ERROR", "CRITICAL")

# How the app's stdout reaches the log router: ECS's log driver `mode` and `max-buffer-size` (the task definition sets
# both; make bench's log back-pressure run plays a router that stops reading with the same buffer size).
APP_LOG_MODE: Final = "non-blocking"
APP_LOG_MAX_BUFFER_SIZE: Final = "25m"

# uWSGI's HTTP router keeps idle client connections open this long; the ALB's idle timeout must be lower, or the ALB
# may reuse a connection the app has just closed (502s).
KEEPALIVE_TIMEOUT_SECONDS: Final = 75

# Accept queue of uWSGI's sockets (uwsgi.ini `listen`), the workers' unix socket among them: requests the HTTP router
# hands on while both workers are busy wait there. A unix socket refuses a connection once its queue is full, where TCP
# retried the handshake a second later: with 1024, 465 of 1,500 simultaneous requests on 2 busy workers were closed
# unanswered (tests/api/test_uwsgi_serving.py). uWSGI exits at start when this exceeds the kernel's net.core.somaxconn
# (uWSGI 2.0.31 core/socket.c:119-123), so the task definition sets that sysctl to the same value (systemControls).
LISTEN_BACKLOG: Final = 4096

# Largest request body the app accepts (413 above it). uwsgi.ini's HTTP router buffers bodies up to this size in memory
# before a worker sees them (and answers 413 itself to a larger one), and the edge's web application firewall
# body-size rule is matched to it.
MAX_BODY_BYTES: Final = 256 * 1024
