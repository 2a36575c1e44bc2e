#!/usr/bin/env bash
# The README's no-Docker path, run as a newcomer would run it from a fresh clone: `make ddb`,
# `make watch`, then each function invoked with its sample event through `cargo lambda invoke`.
# Checks the answers and that the order's reward arrived through the stream, then drains the
# stream once more through the watched stream-consumer with `make trigger`.
#
# Every command it runs is looked up in README.md first, so the README cannot drift from what
# is tested. Everything it starts runs in its own process group and is stopped on exit.
#
# Usage: scripts/test-local-paths.sh   (make test-local-paths; CI runs it from .ci/run)
# Needs ports 8000 (make ddb) and 9000 (cargo lambda watch) free. Prints one PASS or FAIL line.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
README="$ROOT/README.md"
LOGS="$ROOT/.local/local-paths"
# What the commands below would compile is built before any of them is timed (see "build
# first"), so each wait times a start-up or a request; the first invoke still gets longer in
# case cargo lambda watch decides to rebuild.
FIRST_INVOKE_SECONDS=${FIRST_INVOKE_SECONDS:-1200}
INVOKE_SECONDS=${INVOKE_SECONDS:-300}
FUNCTIONS=(order-writer stream-consumer rewards-api outbox-sweeper)
REWARD_POLLS=${REWARD_POLLS:-60}

mkdir -p "$LOGS"
GROUPS_STARTED=()

fail() {
  echo "README local paths: FAIL: $*"
  for log in "$LOGS"/*.log; do
    [[ -f "$log" ]] || continue
    echo "---- last lines of ${log#"$ROOT"/}"
    tail -n 25 "$log"
  done
  exit 1
}

stop_all() {
  local group
  for group in "${GROUPS_STARTED[@]}"; do
    kill -TERM -- "-$group" 2>/dev/null || true
  done
  for group in "${GROUPS_STARTED[@]}"; do
    for _ in $(seq 50); do
      kill -0 -- "-$group" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$group" 2>/dev/null || true
  done
}
trap stop_all EXIT
trap "exit 130" INT TERM

# A command is run only if the README shows it as a line of its own (a trailing comment allowed).
from_readme() {
  python3 - "$README" "$1" <<'PY' || fail "README.md no longer shows \`$1\`: update it or this test"
import re, sys
readme, command = open(sys.argv[1]).read().splitlines(), sys.argv[2]
shown = re.compile(re.escape(command) + r"(\s+#.*)?")
sys.exit(0 if any(shown.fullmatch(line.strip()) for line in readme) else 1)
PY
}

port_taken() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Starts a README command in a process group of its own, logging to $LOGS/<name>.log.
start() {
  local name="$1" command="$2"
  from_readme "$command"
  setsid bash -c "$command" >"$LOGS/$name.log" 2>&1 &
  GROUPS_STARTED+=("$!")
}

wait_for() {
  local what="$1" seconds="$2" check="$3"
  for _ in $(seq "$seconds"); do
    eval "$check" && return 0
    sleep 1
  done
  fail "$what not ready within ${seconds}s"
}

# Runs a README `cargo lambda invoke` line; the function's answer is left in ANSWER.
ANSWER=""
invoke() {
  local seconds="$1" command="$2"
  from_readme "$command"
  ANSWER=$(timeout "$seconds" bash -c "$command" 2>>"$LOGS/invoke.log") ||
    fail "\`$command\` failed or timed out after ${seconds}s"
}

# json_check '<python expression over `answer`>' '<answer>' '<what it means>'
json_check() {
  python3 -c '
import json, sys
answer = json.loads(sys.argv[2])
if "body" in answer and isinstance(answer["body"], str):
    answer["json"] = json.loads(answer["body"])
sys.exit(0 if eval(sys.argv[1]) else 1)
' "$1" "$2" || fail "$3; the answer was: $2"
}

for port in 8000 9000; do
  port_taken "$port" && fail "port $port is already in use (another make ddb or cargo lambda watch?)"
done

echo "== build first: devkit (make ddb, make trigger), cargo-lambda and the four functions (make watch)"
# Untimed, so that a slow (or busy) machine cannot fail a wait below by compiling in it. Each
# is built as its command builds it (make ddb: `cargo run -p devkit`; cargo lambda watch, on a
# function's first invoke: `cargo run --bin <function>`, one binary at a time, whose features
# differ from a build of all four), so they find nothing left to compile.
cargo build --quiet -p devkit || fail "cargo build -p devkit failed"
make --no-print-directory tools || fail "make tools (cargo-lambda for make watch) failed"
for function in "${FUNCTIONS[@]}"; do
  cargo build --quiet --bin "$function" || fail "cargo build --bin $function failed"
done

echo "== make ddb, make watch"
start ddb "make ddb"
wait_for "make ddb" 120 'grep -q "listening on http://127.0.0.1:8000" "$LOGS/ddb.log"'
start watch "make watch"
wait_for "make watch" 120 'port_taken 9000'

from_readme 'export PATH="$PWD/.tools/venv/bin:$PATH"'
export PATH="$PWD/.tools/venv/bin:$PATH"

echo "== order-writer"
invoke "$FIRST_INVOKE_SECONDS" "cargo lambda invoke order-writer --data-file events/order-writer/place-order.json"
placed=$ANSWER
json_check 'answer["statusCode"] == 201 and answer["json"]["points"] == 29' "$placed" \
  "place-order.json should be 201 with 29 points"
order_id=$(python3 -c 'import json, sys; print(json.loads(json.loads(sys.argv[1])["body"])["order_id"])' "$placed")
echo "placed order $order_id"

echo "== rewards-api: the order's points arrive through the stream"
for poll in $(seq "$REWARD_POLLS"); do
  invoke "$INVOKE_SECONDS" "cargo lambda invoke rewards-api --data-file events/rewards-api/get-rewards.json"
  rewards=$ANSWER
  json_check 'answer["statusCode"] == 200' "$rewards" "get-rewards.json should be 200"
  if python3 -c 'import json, sys; r = json.loads(json.loads(sys.argv[1])["body"]); sys.exit(0 if [e["order_id"] for e in r["ledger"]] == [sys.argv[2]] and r["points"] == 29 else 1)' "$rewards" "$order_id"; then
    break
  fi
  [[ $poll == "$REWARD_POLLS" ]] && fail "the reward of order $order_id never arrived; last answer: $rewards"
  sleep 1
done
echo "c-1 has 29 points from order $order_id"

echo "== stream-consumer (sample batch, then the same batch again: all duplicates)"
for _ in 1 2; do
  invoke "$INVOKE_SECONDS" "cargo lambda invoke stream-consumer --data-file events/stream-consumer/outbox-insert-batch.json"
  consumed=$ANSWER
  json_check 'answer == {"batchItemFailures": []}' "$consumed" "outbox-insert-batch.json should have no failures"
done
# The sample batch is three events of its own customers (c-11, c-12): the watched function's own
# log says it applied them the first time and found them applied the second.
grep -q '"message":"batch done","records":3,"applied":3,' "$LOGS/watch.log" ||
  fail "the sample batch was not applied: no such line in $LOGS/watch.log"
grep -q '"message":"batch done","records":3,"applied":0,"duplicates":3,' "$LOGS/watch.log" ||
  fail "the sample batch sent again was not all duplicates: no such line in $LOGS/watch.log"
invoke "$INVOKE_SECONDS" "cargo lambda invoke rewards-api --data-file events/rewards-api/get-rewards.json"
rewards=$ANSWER
json_check 'answer["json"]["points"] == 29 and len(answer["json"]["ledger"]) == 1' "$rewards" \
  "c-1 should still have its one order's 29 points"

echo "== outbox-sweeper"
invoke "$INVOKE_SECONDS" "cargo lambda invoke outbox-sweeper --data-file events/outbox-sweeper/scheduled.json"
swept=$ANSWER
json_check 'answer["failed"] == 0' "$swept" "scheduled.json should sweep without failures"

echo "== make trigger: the stream once more, through the watched stream-consumer"
trigger="make trigger INVOKE_URL=http://127.0.0.1:9000/2015-03-31/functions/stream-consumer/invocations"
from_readme "$trigger FOLLOW=1"
timeout "$INVOKE_SECONDS" bash -c "$trigger" >"$LOGS/trigger.log" 2>&1 || fail "\`$trigger\` failed"
grep -qE "records_delivered: [1-9][0-9]*, .*function_errors: 0" "$LOGS/trigger.log" ||
  fail "make trigger delivered nothing or the function failed: $(tail -n 1 "$LOGS/trigger.log")"
invoke "$INVOKE_SECONDS" "cargo lambda invoke rewards-api --data-file events/rewards-api/get-rewards.json"
rewards=$ANSWER
json_check 'answer["json"]["points"] == 29' "$rewards" "the redelivered event must not be counted twice"

echo "README local paths: PASS (make ddb + make watch; order-writer 201, reward arrived through the stream, stream-consumer, rewards-api, outbox-sweeper, make trigger through the watch)"
