#!/usr/bin/env bash
# Fuzz the DRF API of the demo with schemathesis: `bash scripts/api_fuzz.sh`.
#
# Starts the demo (manage.py runserver) on a free local port with a throwaway SQLite
# database, logs the demo user in through the API (reading the code the console provider
# prints) so the protected endpoints are reached too, then runs schemathesis against the
# served OpenAPI schema: no 5xx, and every status, content type, header and body must
# match the schema. Stops the server and exits non-zero on any failure.
#
# Environment: PY (default .venv/bin/python), FUZZ_MAX_EXAMPLES (default 40),
# FUZZ_SEED (for a reproducible run), FUZZ_CHECKS (default below).
set -euo pipefail

cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
MAX_EXAMPLES=${FUZZ_MAX_EXAMPLES:-40}
CHECKS=${FUZZ_CHECKS:-not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,unsupported_method,ignored_auth}

SCHEMATHESIS=$(dirname "$PY")/schemathesis
if [[ ! -x $SCHEMATHESIS ]]; then
    "$PY" -m pip install --quiet --group fuzz
fi

WORK=$(mktemp -d)
SERVER_PID=""
cleanup() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID"
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
BASE=http://127.0.0.1:$PORT
export DATABASE_URL=sqlite:///$WORK/fuzz.sqlite3
export OTP_API_THROTTLE=false  # DRF throttles off: fuzz the endpoints, not the 429s
export DJANGO_SETTINGS_MODULE=demo_project.settings PYTHONUNBUFFERED=1
export HYPOTHESIS_STORAGE_DIRECTORY=$WORK/hypothesis  # no .hypothesis/ left in the tree

"$PY" manage.py migrate --noinput >"$WORK/migrate.log"
"$PY" manage.py demo_seed
"$PY" manage.py runserver --noreload "127.0.0.1:$PORT" >"$WORK/server.log" 2>&1 &
SERVER_PID=$!

# Wait for the server, then log in: password step, the code from the console, code step.
TOKEN=$(
    BASE=$BASE LOG=$WORK/server.log "$PY" - <<'PY'
import json, os, re, time, urllib.error, urllib.request

base, log = os.environ["BASE"], os.environ["LOG"]

def post(path, body):
    request = urllib.request.Request(
        base + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)

for _ in range(60):
    try:
        urllib.request.urlopen(base + "/api/schema/", timeout=2).close()
        break
    except (urllib.error.URLError, ConnectionError):
        time.sleep(0.5)
else:
    raise SystemExit("the demo server did not start")

challenge = post("/api/login/", {"username": "demo", "password": "demo-password-2fa"})
time.sleep(0.5)
codes = re.findall(r"code is (\d{6})", open(log).read())
if not codes:
    raise SystemExit("no code in the server output")
print(post("/api/login/verify/", {"challenge": challenge["challenge"], "code": codes[-1]})["token"])
PY
)

fuzz() {
    "$SCHEMATHESIS" run "$BASE/api/schema/" \
        --url "$BASE" \
        --header "Authorization: Token $TOKEN" \
        --checks "$CHECKS" \
        --max-examples "$MAX_EXAMPLES" \
        --workers 1 \
        --generation-database none \
        ${FUZZ_SEED:+--seed "$FUZZ_SEED"} \
        --no-color "$@"
}

# Logging out deletes the token, so it is fuzzed last, on its own.
status=0
fuzz --exclude-path /api/logout/ || status=$?
fuzz --include-path /api/logout/ || status=$?

if grep -q "Traceback" "$WORK/server.log"; then
    echo "error: the server logged a traceback:" >&2
    grep -B 5 -A 30 "Traceback" "$WORK/server.log" | head -80 >&2
    status=1
fi
exit "$status"
