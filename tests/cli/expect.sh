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

# The scripts write their images with Python, which the nested rig's L1 has
# not; there the rig makes them on the host first (CLI_IMAGES_OUT=DIR: the
# script writes its images into DIR and stops) and the script takes them from
# CLI_IMAGES_IN=DIR. Both use $tmp, the script's scratch directory.
images_from_host() { # true when the images were copied in
	[[ -n ${CLI_IMAGES_IN:-} ]] && cp -a "$CLI_IMAGES_IN"/. "$tmp"/
}
images_made() {
	[[ -z ${CLI_IMAGES_OUT:-} ]] || { cp -a "$tmp"/. "$CLI_IMAGES_OUT"/ && exit 0; exit 1; }
}
