# Shared result reporting for tests/deploy/*.sh: each check prints one line and appends it to $DEPLOY_RESULTS,
# which run.sh counts. Sourced, not executed.
DEPLOY_RESULTS="${DEPLOY_RESULTS:-$(mktemp)}"
export DEPLOY_RESULTS
pass() { echo "PASS $*"; echo "PASS $*" >>"$DEPLOY_RESULTS"; }
fail() { echo "FAIL $*"; echo "FAIL $*" >>"$DEPLOY_RESULTS"; }
skip() { echo "SKIP $*"; echo "SKIP $*" >>"$DEPLOY_RESULTS"; }
# check NAME CMD...: pass when CMD exits 0, fail (with its output) otherwise.
check() {
  local name="$1"; shift
  local out
  if out="$("$@" 2>&1)"; then pass "$name"; else fail "$name"; printf '%s\n' "$out" | tail -30 | sed 's/^/    /'; fi
}
