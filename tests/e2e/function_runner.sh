#!/bin/sh
# minivmm-runner (runner/) with real VMs: the minimal kernel and the initramfs whose /init runs
# the agent (mvagent=1). The first job makes the pool's snapshot; the others are clones of it.
# Checks, each against what the host computed: stdout/stderr/status of commands; 1 MiB of
# stdin and 64 MiB of stdout byte for byte; a file copied in; environment and working
# directory; exit statuses; jobs killed by a signal, by the timeout, by filling their memory;
# two clones that must draw different random numbers and have the host's time; a cold boot;
# the server with 50 jobs at once; the old runner's 20-command example through the server.
# rig-timeout: 1500
# rig-last: many VMs at once (the server runs 50 jobs), where the rig's L1 has died most: run after the others
# shellcheck source=tests/rig/lib.sh
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_minivmm
need_file GUEST_INITRD
[ -n "${RUNNER:-}" ] && [ -x "$RUNNER" ] || skip "no minivmm-runner (build it beside minivmm)"
[ -n "${MINIMAL_KERNEL:-}" ] && [ -f "$MINIMAL_KERNEL" ] || skip "no minimal kernel (vsock is built into it)"
W=$LOGDIR/function-runner
mkdir -p "$W/work"
OPTS="--kernel $MINIMAL_KERNEL --initrd $GUEST_INITRD --minivmm $MINIVMM --mem 128 --pool-dir $W/pool --work-dir $W/work"
# run_job NAME [runner options] -- COMMAND...: runs it, stdout in $W/NAME.out, stderr in
# $W/NAME.err, status in $rc.
run_job() {
	name=$1
	shift
	# shellcheck disable=SC2086
	timeout 600 "$RUNNER" run $OPTS "$@" <"${JOB_STDIN:-/dev/null}" >"$W/$name.out" 2>"$W/$name.err"
	rc=$?
}
want() { # want NAME STATUS: the status and, if given, stdout ($2 and $3)
	[ "$rc" = "$2" ] || fail "$1: exit status $rc, want $2; stderr: $(head -c 400 "$W/$1.err")"
}

note "first job: boots the template VM, snapshots it, then runs as a clone"
t0=$(now)
run_job first -v -- uname -s
want first 0
[ "$(cat "$W/first.out")" = Linux ] || fail "first: stdout '$(cat "$W/first.out")'"
grep -q 'snapshot made in' "$W/first.err" || fail "first: no snapshot made: $(cat "$W/first.err")"
first_s=$(elapsed "$t0")
cat "$W/first.err"

note "stdin, stdout, stderr, files, environment, working directory"
t0=$(now)
run_job clone -v -- sh -c 'echo out; echo err >&2; exit 3'
want clone 3
[ "$(cat "$W/clone.out")" = out ] && grep -q '^err$' "$W/clone.err" || fail "clone: out '$(cat "$W/clone.out")' err '$(cat "$W/clone.err")'"
clone_line=$(grep 'minivmm-runner: ok in' "$W/clone.err")
clone_s=$(elapsed "$t0")
head -c 1048576 /dev/urandom >"$W/in1m"
JOB_STDIN=$W/in1m run_job stdin -i -- cat
want stdin 0
cmp -s "$W/in1m" "$W/stdin.out" || fail "1 MiB of stdin came back different ($(wc -c <"$W/stdin.out") bytes)"
run_job big --file "$W/in1m:/tmp/r:0600" -- sh -c '[ "$(stat -c %a /tmp/r)" = 600 ] || exit 9; for i in $(seq 64); do cat /tmp/r; done'
want big 0
i=0
: >"$W/want64"
while [ $i -lt 64 ]; do cat "$W/in1m" >>"$W/want64"; i=$((i + 1)); done
cmp -s "$W/want64" "$W/big.out" || fail "64 MiB of stdout came back different ($(wc -c <"$W/big.out") bytes)"
rm -f "$W/want64" "$W/big.out"
run_job env -e FOO='a b' -e BAR= -C /tmp -- sh -c 'printf "%s|%s|%s|" "$FOO" "$BAR" "$(pwd)"; printf "\001\377"'
want env 0
[ "$(od -An -c "$W/env.out" | tr -s ' \n' ' ')" = " a b | | / t m p | 001 377 " ] || fail "env/cwd/binary: $(od -An -c "$W/env.out")"

note "exit statuses, signals, a timeout, a full memory"
for st in 0 1 2 126 127 128 200 255; do
	run_job st -- sh -c "exit $st"
	want st "$st"
done
run_job nocmd -- /no/such/command
want nocmd 127
grep -q 'mvagent: .*No such file' "$W/nocmd.err" || fail "missing command: stderr $(cat "$W/nocmd.err")"
run_job kill9 -- sh -c 'kill -9 $$'
want kill9 137
run_job term -- sh -c 'kill -TERM $$'
want term 143
t0=$(now)
run_job timeout --timeout 5 -- sleep 600
want timeout 124
grep -q 'timed out after 5 s' "$W/timeout.err" || fail "timeout: $(cat "$W/timeout.err")"
timeout_s=$(elapsed "$t0")
run_job oom -- awk 'BEGIN { s = "xxxxxxxxxxxxxxxx"; while (1) s = s s }'
want oom 137
run_job after_oom -- echo alive
want after_oom 0

note "clones: different random numbers, the host's time"
run_job rand1 -- sh -c 'head -c 16 /dev/urandom | od -An -tx1; date +%s'
want rand1 0
run_job rand2 -- sh -c 'head -c 16 /dev/urandom | od -An -tx1; date +%s'
want rand2 0
r1=$(head -n 1 "$W/rand1.out") r2=$(head -n 1 "$W/rand2.out")
[ -n "$r1" ] && [ "$r1" != "$r2" ] || fail "two clones drew the same random bytes: $r1"
gt=$(tail -n 1 "$W/rand2.out") ht=$(date +%s)
[ $((ht - gt)) -le 30 ] && [ $((gt - ht)) -le 30 ] || fail "a clone's clock says $gt, the host's $ht"

note "a cold boot"
t0=$(now)
run_job cold --cold -- echo cold
want cold 0
[ "$(cat "$W/cold.out")" = cold ] || fail "cold: stdout $(cat "$W/cold.out")"
cold_s=$(elapsed "$t0")

note "the server: 50 jobs at once"
S=$W/serve.sock
# shellcheck disable=SC2086
"$RUNNER" serve --socket "$S" $OPTS --jobs 50 2>"$W/serve.err" &
spid=$!
i=0
while [ ! -S "$S" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
i=0
: >"$W/jobs50"
while [ $i -lt 50 ]; do
	printf '{"id":%d,"cmd":"echo job %d; exit %d"}\n' $i $i $((i * 5 % 256)) >>"$W/jobs50"
	i=$((i + 1))
done
t0=$(now)
timeout 900 "$RUNNER" submit --socket "$S" <"$W/jobs50" >"$W/results50" || fail "submit: exit $?"
serve_s=$(elapsed "$t0")
i=0
while [ $i -lt 50 ]; do
	line=$(grep "^{\"id\":$i," "$W/results50")
	st=$(printf '%s' "$line" | sed -n 's/.*"outcome":"ok","status":\([0-9]*\),.*/\1/p')
	out=$(printf '%s' "$line" | sed -n 's/.*"stdout":"\([^"]*\)".*/\1/p' | base64 -d)
	[ "$st" = $((i * 5 % 256)) ] && [ "$out" = "job $i" ] || fail "server job $i: $line"
	i=$((i + 1))
done

note "the old runner's 20-command example, through the server"
tab=$(printf '\t')
n=0
: >"$W/example.jobs"
while IFS=$tab read -r st out err cmd; do
	case $st in '' | '#'*) continue ;; esac
	n=$((n + 1))
	echo "$st" >"$W/ex$n.status"
	for s in out err; do
		eval "spec=\$$s"
		case $spec in
		-) : >"$W/ex$n.$s" ;;
		@*) sh -c "${spec#@}" >"$W/ex$n.$s" ;;
		# shellcheck disable=SC2059
		*) printf "$spec" >"$W/ex$n.$s" ;;
		esac
	done
	esc=$(printf '%s' "$cmd" | sed 's/\\/\\\\/g; s/"/\\"/g')
	printf '{"id":%d,"cmd":"%s"}\n' $n "$esc" >>"$W/example.jobs"
done <"$(dirname "$RIG_LIB")/../runner/example.cmds"
timeout 900 "$RUNNER" submit --socket "$S" <"$W/example.jobs" >"$W/example.results" || fail "submit: exit $?"
i=1
bad=
while [ $i -le $n ]; do
	line=$(grep "^{\"id\":$i," "$W/example.results")
	st=$(printf '%s' "$line" | sed -n 's/.*"outcome":"ok","status":\([0-9]*\),.*/\1/p')
	sig=$(printf '%s' "$line" | sed -n 's/.*"outcome":"ok","signal":\([0-9]*\),.*/\1/p')
	[ -n "$sig" ] && st=$((128 + sig))
	printf '%s' "$line" | sed -n 's/.*"stdout":"\([^"]*\)".*/\1/p' | base64 -d >"$W/ex$i.gotout"
	printf '%s' "$line" | sed -n 's/.*"stderr":"\([^"]*\)".*/\1/p' | base64 -d >"$W/ex$i.goterr"
	if [ "$st" != "$(cat "$W/ex$i.status")" ] || ! cmp -s "$W/ex$i.out" "$W/ex$i.gotout" ||
		! cmp -s "$W/ex$i.err" "$W/ex$i.goterr"; then
		bad="$bad $i"
		note "example $i: got status '$st', line $(printf '%s' "$line" | head -c 300)"
	fi
	i=$((i + 1))
done
kill -TERM $spid
wait $spid || fail "the server exited $? on SIGTERM: $(tail -n 3 "$W/serve.err")"
[ -z "$bad" ] || fail "example commands wrong:$bad"
[ $n = 20 ] || fail "the example has $n commands, want 20"

pass "first job (template boot + snapshot) ${first_s}s, a clone's job ${clone_s}s ($clone_line), cold ${cold_s}s; 1 MiB in, 64 MiB out, files, env, statuses, signals, timeout (${timeout_s}s), OOM, unique clones; 50 server jobs at once in ${serve_s}s; the 20-command example"
