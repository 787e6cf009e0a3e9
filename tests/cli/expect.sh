# Sourced by the tests/cli scripts. Needs MINIVMM, counters pass and fail;
# RUN may hold a prefix for the command (an emulator, env settings).
#
# expect_error NEEDLE ARGS...: minivmm ARGS must exit 1 within 20 s with
# exactly one stderr line, "minivmm: error: ...", containing NEEDLE.
expect_error() {
	local needle=$1; shift
	local out rc lines
	out=$(timeout -k 5 20 ${RUN[@]+"${RUN[@]}"} "$MINIVMM" "$@" 2>&1 >/dev/null </dev/null)
	rc=$?
	lines=$(printf '%s\n' "$out" | grep -c .)
	if [[ $rc -eq 1 && $lines -eq 1 && $out == "minivmm: error: "* && $out == *"$needle"* ]]; then
		pass=$((pass + 1))
	else
		fail=$((fail + 1))
		echo "FAIL: minivmm $(printf '%.200s' "$*") -> rc=$rc$( ((rc == 124)) && echo ' (timed out)'), stderr:"
		printf '%s\n' "$out" | head -20 | sed 's/^/  /'
		echo "  (wanted exit 1 and one error line containing '$needle')"
	fi
}
