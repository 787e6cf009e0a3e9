#!/bin/bash
# minivmm-runner on any host, without KVM: a stand-in VMM with a stand-in agent
# (fake_vmm_agent.py) answers as minivmm and the guest agent would, or as a
# broken or lying one. Checks: results, stdin and exit status carried exactly,
# the snapshot pool made once and reused, a silent or lying agent ending its own
# job (124 or 125, never a hang), the server's 50 jobs at once, bad job lines,
# Ctrl-C. The real thing, in VMs: the rig scenario `runner`.
#   test_runner_host.sh RUNNER_BINARY
set -u
RUNNER=$1
HERE=$(cd "$(dirname "$0")" && pwd)
FAKE=$HERE/fake_vmm_agent.py
command -v python3 >/dev/null || { echo "NOT RUN: needs python3 (the stand-in VMM is a python script)"; exit 0; }
W=$(mktemp -d /tmp/runner-host.XXXXXX)
trap 'rm -rf "$W"' EXIT
echo kernel >"$W/k"
echo initrd >"$W/i"
R=("$RUNNER" run --minivmm "$FAKE" --kernel "$W/k" --initrd "$W/i" --work-dir "$W" --pool-dir "$W/pool")
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

# expect_run NAME STATUS STDERR_REGEX [env...] -- runner args
expect_run() {
	local name=$1 want=$2 re=$3
	shift 3
	local -a envs=()
	while [ "$1" != -- ]; do envs+=("$1"); shift; done
	shift
	env "${envs[@]}" timeout 60 "${R[@]}" "$@" </dev/null >"$W/out" 2>"$W/err"
	local rc=$?
	if [ $rc != "$want" ]; then fail "$name: exit $rc, want $want: $(head -c 300 "$W/err")"; return; fi
	if ! grep -Eq "$re" "$W/err"; then fail "$name: stderr '$(head -c 300 "$W/err")' does not match /$re/"; return; fi
	ok "$name"
}

# A good agent: stdin back on stdout, args on stderr, status from the first arg.
printf 'hello\n' | FAKE_AGENT=ok "${R[@]}" --cold -i -- 7 a b >"$W/out" 2>"$W/err"
rc=$?
[ $rc = 7 ] && [ "$(cat "$W/out")" = hello ] && [ "$(cat "$W/err")" = "$(printf '7\na\nb')" ] &&
	ok "stdin, stdout, stderr, status" || fail "good agent: exit $rc, out '$(cat "$W/out")', err '$(cat "$W/err")'"

head -c 1048576 /dev/urandom >"$W/big"
FAKE_AGENT=ok "${R[@]}" --cold -i -- 0 <"$W/big" >"$W/big.out" 2>/dev/null
cmp -s "$W/big" "$W/big.out" && ok "1 MiB of binary stdin back byte for byte" || fail "1 MiB stdin came back different"

for st in 0 1 128 255; do
	FAKE_AGENT=ok "${R[@]}" --cold -- $st >/dev/null 2>&1
	rc=$?
	[ $rc = $st ] || fail "status $st came back as $rc"
done
ok "statuses 0 1 128 255"

expect_run "silent agent: timeout" 124 'timed out after 2 s' FAKE_AGENT=silent -- --cold --timeout 2 -- true
expect_run "nobody listens: timeout" 124 'timed out after 2 s, before the agent answered' FAKE_AGENT=refuse -- --cold --timeout 2 -- true
expect_run "a 2 GiB frame" 125 'bad frame: .*STDOUT' FAKE_AGENT=lie-len -- --cold --timeout 20 -- true
expect_run "an EXIT of 3 bytes" 125 'EXIT' FAKE_AGENT=lie-exit -- --cold --timeout 20 -- true
expect_run "STDOUT for READY" 125 'answered HELLO with STDOUT' FAKE_AGENT=bad-type -- --cold --timeout 20 -- true
expect_run "the VM dies mid-job" 125 'the VM ended before the job did \(minivmm exited with status 3' FAKE_AGENT=die -- --cold --timeout 20 -- true

# Errors of the user's own.

expect_run "no command" 125 'no command to run' -- --cold
expect_run "bad --mem" 125 '^minivmm-runner: --mem 12: must be a number from 64' -- --mem 12 -- true
expect_run "bad --file" 125 '^minivmm-runner: --file nope: must be HOST:GUEST' -- --file nope -- true
"$RUNNER" run --minivmm "$FAKE" --kernel "$W/nokernel" --initrd "$W/i" -- true 2>"$W/err"
[ $? = 125 ] && grep -q 'kernel .*nokernel: No such file' "$W/err" && ok "missing kernel" || fail "missing kernel: $(cat "$W/err")"

# The pool: the first job boots the template (with a control socket), pauses and snapshots it;
# later jobs only restore.
rm -f "$W/log"
for n in 1 2 3; do FAKE_AGENT=ok FAKE_LOG=$W/log "${R[@]}" -- 0 >/dev/null 2>&1 || fail "pool job $n failed"; done
cold=$(grep -c -- '--api-sock' "$W/log") restores=$(grep -c -- '--restore' "$W/log")
grep -q '^ctl .* pause$' "$W/log" && grep -q '^ctl .* snapshot ' "$W/log" && [ "$cold" = 1 ] && [ "$restores" = 3 ] &&
	ok "pool: one template boot, pause, snapshot; 3 restores" || fail "pool: $(cat "$W/log")"

# Ctrl-C: the runner stops its VM and exits 130; no stand-in is left running.
FAKE_AGENT=silent "${R[@]}" --cold -- true >/dev/null 2>"$W/err" &
pid=$!
sleep 1.5
kill -INT $pid
wait $pid
rc=$?
sleep 0.3
[ $rc = 130 ] && ! pgrep -f "fake_vmm_agent.py.*$W" >/dev/null && ok "Ctrl-C: exit 130, VM stopped" ||
	fail "Ctrl-C: exit $rc ($(cat "$W/err")), left: $(pgrep -af "fake_vmm_agent.py.*$W")"

# The server: 50 jobs at once from one client, each result right; a bad line gets an error line.
S=$W/serve.sock
FAKE_AGENT=ok "$RUNNER" serve --socket "$S" --minivmm "$FAKE" --kernel "$W/k" --initrd "$W/i" --work-dir "$W" \
	--cold --jobs 50 2>"$W/serve.err" &
spid=$!
for _ in $(seq 100); do [ -S "$S" ] && break; sleep 0.1; done
python3 - "$W/jobs" <<'PY'
import base64, json, sys
with open(sys.argv[1], "w") as f:
    for i in range(50):
        f.write(json.dumps({"id": i, "argv": [str(i * 5 % 256), "x"], "stdin": base64.b64encode(b"job %d\xff" % i).decode()}) + "\n")
    f.write('{"id": "bad", "argv": "not a list"}\n')
    f.write('not json\n')
    f.write(json.dumps({"id": "huge", "argv": ["echo", "x" * 300000]}) + "\n")
    f.write(json.dumps({"id": "flood", "cmd": "yes", "max_output_mib": 1, "timeout": 30}) + "\n")
PY
# The flood job needs its own agent mode: a second server would do, but one mode per server
# keeps the stand-in simple, so it is checked below on its own server.
head -n 53 "$W/jobs" >"$W/jobs52"
timeout 120 "$RUNNER" submit --socket "$S" <"$W/jobs52" >"$W/results"
python3 - "$W/results" <<'PY' && ok "serve: 50 jobs at once, all right; bad lines and a 300 KiB argument answered" || fail "serve results"
import base64, json, sys
res = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    res[r.get("id")] = r
bad = []
for i in range(50):
    r = res.get(i)
    if not r or r["outcome"] != "ok" or r.get("status") != i * 5 % 256 or base64.b64decode(r["stdout"]) != b"job %d\xff" % i:
        bad.append((i, r))
if res.get("bad", {}).get("error", "").find('"argv"') < 0:
    bad.append(("bad", res.get("bad")))
if not any(k is None and "not one JSON object" in r.get("error", "") for k, r in res.items()):
    bad.append(("not json", None))
if "argument 1 is longer than 262144 bytes" not in res.get("huge", {}).get("error", ""):
    bad.append(("huge", res.get("huge")))
if bad:
    print("wrong:", bad[:3])
    sys.exit(1)
PY
kill -TERM $spid
wait $spid
[ $? = 0 ] && [ ! -e "$S" ] && ok "serve: SIGTERM stops it, socket removed" || fail "serve did not stop cleanly: $(tail -3 "$W/serve.err")"

FAKE_AGENT=flood "$RUNNER" serve --socket "$S" --minivmm "$FAKE" --kernel "$W/k" --initrd "$W/i" --work-dir "$W" \
	--cold 2>"$W/serve.err" &
spid=$!
for _ in $(seq 100); do [ -S "$S" ] && break; sleep 0.1; done
tail -n 1 "$W/jobs" | timeout 60 "$RUNNER" submit --socket "$S" >"$W/results"
grep -q '"outcome":"output_limit"' "$W/results" && ok "an agent that floods output: output_limit" ||
	fail "flood: $(head -c 300 "$W/results")"
kill -TERM $spid
wait $spid

[ $fails = 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "all runner host checks passed"
