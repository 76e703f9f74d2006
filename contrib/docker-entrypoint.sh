#!/bin/sh
# Container entrypoint: audit the data directory at boot, keep it clean beside
# the service with `datagc watch`, and stop both cleanly.
#
#   COPY contrib/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
#   ENV DATAGC_DATA_DIR=/app/.data
#   ENTRYPOINT ["docker-entrypoint.sh"]
#   CMD ["node", "server.js"]
#
# This shell stays as PID 1 so that it can hand `docker stop`'s SIGTERM (or a
# Ctrl-C's SIGINT) to both the service and the watch: the service gets SIGTERM
# (background jobs of a shell ignore SIGINT, so SIGINT is passed on as SIGTERM),
# watch finishes the pass it is in and exits. The container exits with the
# service's status. SIGHUP goes to the service only. When the service ends on
# its own, watch is stopped too. datagc failing never stops the service.
# Run with `docker run --init` if the service leaves orphans to reap.
set -u

if [ "$#" -eq 0 ]; then
    echo "usage: docker-entrypoint.sh COMMAND [ARG...]  (the service to run)" >&2
    exit 64
fi

# Signals are trapped first, so that one arriving while things start is not lost.
service_pid=""
watch_pid=""
stopping=""
stop_both() {
    stopping=1
    for pid in $service_pid $watch_pid; do
        kill -TERM "$pid" 2>/dev/null
    done
}
forward_hup() {
    [ -z "$service_pid" ] || kill -HUP "$service_pid" 2>/dev/null
}
trap stop_both TERM INT
trap forward_hup HUP

# 1. One read-only look before the service starts: the [disk-audit] lines in
#    `docker logs` are the first thing to read in an incident. 32 (above the
#    pressure threshold) is worth reading, not a reason to stay down.
datagc audit
audit_status=$?
case $audit_status in
    0 | 32) ;;
    *) echo "[entrypoint] datagc audit exited $audit_status; starting the service anyway" >&2 ;;
esac
[ -z "$stopping" ] || exit 143

# 2. The watch (run-all every watch.interval) and the service, side by side.
datagc watch &
watch_pid=$!
"$@" &
service_pid=$!
[ -z "$stopping" ] || stop_both

# 3. Wait for the service. A trapped signal cuts `wait` short (status > 128),
#    so wait again while it is still there; a last wait collects its status.
status=0
while kill -0 "$service_pid" 2>/dev/null; do
    wait "$service_pid"
    status=$?
done
if [ "$status" -gt 128 ]; then
    wait "$service_pid" 2>/dev/null
    collected=$?
    [ "$collected" -ne 127 ] && status=$collected
fi

# 4. The service is gone: stop the watch (it ends between passes) and leave.
trap - TERM INT HUP
kill -TERM "$watch_pid" 2>/dev/null
wait "$watch_pid"
exit "$status"
