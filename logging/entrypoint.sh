#!/usr/bin/env bash
# Entrypoint of the recsys log router image: runs the image's own start command (the Dockerfile's CMD) and holds the
# stop signal from ECS until no urgent copy is left in rewrite_tag's emitter queue, then passes it on.
#
# Why: at SIGTERM Fluent Bit 5.0.x pauses every input, the emitter of rewrite_tag included, and frees the copies still
# queued in it (plugins/in_emitter/emitter.c: the queue moves into the engine's chunks every 25 ms, but only while the
# emitter runs; cb_emitter_exit destroys what is left). Copies already in a chunk are flushed during Grace like any
# other record. ECS stops the app before the router (the app dependsOn the router; shutdown runs in reverse order:
# https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerDependency.html), so the app's last lines,
# the ones a crashing task writes, are exactly those still queued when the router gets its SIGTERM. ECS sends that
# signal to this process, the container's PID 1, as `docker stop` does
# (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_StopTask.html); the task definition sets no
# entryPoint for the router, so the image's ENTRYPOINT (this script) is what runs
# (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerDefinition.html, entryPoint).
# docs/logging.md has the measurements.
#
# The hold ends when Fluent Bit's own counters show that the emitter has appended every copy rewrite_tag handed it and
# no input received a record between two metrics snapshots (Fluent Bit refreshes them once a second), or after
# ROUTER_DRAIN_TIMEOUT_SECONDS at most. The router's stopTimeout must cover that plus Grace (logging/contract.json):
# ECS sends SIGKILL when it runs out
# (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ContainerDefinition.html, stopTimeout).
# A second stop signal is passed on at once.
#
# Environment (the defaults are the values of logging/extra.conf and contract.json; tests hold them together):
#   ROUTER_METRICS_URL            Fluent Bit's Prometheus-format metrics (HTTP_Server of extra.conf)
#   ROUTER_URGENT_FILTER          Alias of the rewrite_tag filter
#   ROUTER_URGENT_EMITTER         Emitter_Name of the rewrite_tag filter
#   ROUTER_DRAIN_TIMEOUT_SECONDS  longest hold, whole seconds
#   ROUTER_DRAIN_POLL_MS          time between two reads of the counters; above Fluent Bit's 1 s metrics refresh, so
#                                 that two reads never see the same snapshot
# Needs only bash, coreutils (date, sleep) and curl, which the aws-for-fluent-bit 3.x image carries.
set -u

log() {
    printf '%s [recsys-router-entrypoint] %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2
}

usage_error() {
    log "$*"
    exit 64
}

metrics_url="${ROUTER_METRICS_URL:-http://127.0.0.1:2020/api/v1/metrics/prometheus}"
urgent_filter="${ROUTER_URGENT_FILTER:-copy_urgent}"
urgent_emitter="${ROUTER_URGENT_EMITTER:-urgent_emitter}"
drain_timeout_seconds="${ROUTER_DRAIN_TIMEOUT_SECONDS:-10}"
poll_ms="${ROUTER_DRAIN_POLL_MS:-1200}"

(($# > 0)) || usage_error "no command given: pass the image's start command (the Dockerfile's CMD, /entrypoint.sh)"
if ! [[ $drain_timeout_seconds =~ ^[0-9]{1,3}$ ]] || ((10#$drain_timeout_seconds > 100)); then
    usage_error "ROUTER_DRAIN_TIMEOUT_SECONDS=$drain_timeout_seconds: expected whole seconds from 0 to 100 (ECS allows a stopTimeout of 120 s at most, and Grace needs its share)"
fi
if ! [[ $poll_ms =~ ^[0-9]{1,5}$ ]] || ((10#$poll_ms < 1100 || 10#$poll_ms > 5000)); then
    usage_error "ROUTER_DRAIN_POLL_MS=$poll_ms: expected milliseconds from 1100 to 5000 (Fluent Bit refreshes its metrics every second; a shorter poll could read one snapshot twice)"
fi
drain_timeout_seconds=$((10#$drain_timeout_seconds))
poll_ms=$((10#$poll_ms))
poll_sleep="$((poll_ms / 1000)).$(printf '%03d' $((poll_ms % 1000)))"

now_ms() {
    local micros=${EPOCHREALTIME//[!0-9]/}
    echo $((10#$micros / 1000))
}

# Prints "<copies emitted> <copies appended to chunks> <records received by the other inputs>".
read_counters() {
    local body metric value emitted="" appended="" received=0
    body="$(curl -fsS --max-time 2 "$metrics_url" 2>&1)" || {
        log "cannot read $metrics_url: $body"
        return 1
    }
    while read -r metric value _; do
        [[ $value =~ ^[0-9]+$ ]] || continue
        case "$metric" in
        "fluentbit_filter_emit_records_total{name=\"$urgent_filter\"}") emitted=$value ;;
        "fluentbit_input_records_total{name=\"$urgent_emitter\"}") appended=$value ;;
        fluentbit_input_records_total\{*) received=$((received + value)) ;;
        esac
    done <<<"$body"
    if [[ -z $emitted || -z $appended ]]; then
        log "no counter for filter '$urgent_filter' or emitter '$urgent_emitter' at $metrics_url: ROUTER_URGENT_FILTER and ROUTER_URGENT_EMITTER must name the rewrite_tag filter's Alias and Emitter_Name"
        return 1
    fi
    echo "$emitted $appended $received"
}

drain() {
    local deadline previous="" counters emitted appended _received
    deadline=$(($(now_ms) + drain_timeout_seconds * 1000))
    log "stop signal received: waiting up to ${drain_timeout_seconds} s for the urgent copies to leave the emitter"
    while (($(now_ms) < deadline)); do
        if ((signals > 1)); then
            log "second stop signal: passing it on now"
            return
        fi
        kill -0 "$child" 2>/dev/null || return
        if counters="$(read_counters)"; then
            read -r emitted appended _received <<<"$counters"
            if [[ $counters == "$previous" ]] && ((appended >= emitted)); then
                log "emitter drained: $appended of $emitted urgent copies are in chunks and no input received anything for ${poll_ms} ms"
                return
            fi
            previous=$counters
        fi
        sleep "$poll_sleep"
    done
    log "still not drained after ${drain_timeout_seconds} s (emitted, appended, received: ${previous:-unknown}): copies still queued in the emitter will be lost"
}

signals=0
# Counting only: the work happens in the main loop, where `wait` returns as soon as a trapped signal arrives.
trap 'signals=$((signals + 1))' TERM INT

# Job control gives the command its own process group, so that the signal also reaches Fluent Bit if the start
# command runs it as a child instead of exec'ing it; it is off again once the command has started, which keeps bash's
# job notices out of the router's log.
set -m
"$@" &
child=$!
set +m

forwarded=0
status=0
while :; do
    wait "$child"
    status=$?
    kill -0 "$child" 2>/dev/null || break
    ((signals > forwarded)) || continue
    ((forwarded > 0)) || drain
    # Fluent Bit treats SIGTERM and SIGINT alike; SIGTERM is what its Grace handling is documented for.
    kill -s TERM -- "-$child" 2>/dev/null || true
    forwarded=$signals
done
# The container ends with this script: after a stop, wait for whatever of the command's group still flushes.
if ((forwarded > 0)); then
    while kill -0 -- "-$child" 2>/dev/null; do
        sleep 0.1
    done
fi
exit "$status"
