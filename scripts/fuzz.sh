#!/usr/bin/env bash
# Runs every Go fuzz target in the repository for a while each.
#
#   scripts/fuzz.sh [DURATION]     DURATION per target, default 10s (Go's -fuzztime syntax)
#
# A failing input is written by go test to <package>/testdata/fuzz/<Target>/;
# commit it: it then runs as a regression test with every `go test`.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10s}

# Go 1.26's fuzzing coordinator can fail a target that found nothing with a
# bare "context deadline exceeded" when -fuzztime runs out (a race between
# the deadline and its workers, golang/go#75804, fixed in Go 1.27). CI saw it
# on FuzzConfigParse: no input written, and the same run passes again. So the
# fuzz runs use Go 1.27.3, which the go command fetches from the module proxy
# (about 76 MB, once per machine). Set FUZZ_GOTOOLCHAIN=local to fuzz with the
# machine's own Go instead.
export GOTOOLCHAIN="${FUZZ_GOTOOLCHAIN:-go1.27.3}"
if ! go version >/dev/null 2>&1; then
	echo "fuzz.sh: Go toolchain $GOTOOLCHAIN unavailable, fuzzing with the local Go (a bare 'context deadline exceeded' may then be golang/go#75804)" >&2
	export GOTOOLCHAIN=local
fi
echo "fuzz.sh: $(go version)"

# Every "func FuzzXxx(" in a _test.go file, as "package-dir target".
targets=$(git ls-files --cached --others --exclude-standard '*_test.go' |
	xargs grep -ho --with-filename '^func Fuzz[A-Za-z0-9_]*' |
	sed -E 's#^(.*)/[^/]*_test\.go:func (Fuzz[A-Za-z0-9_]*)$#\1 \2#; s#^[^/ ]*_test\.go:func (Fuzz[A-Za-z0-9_]*)$#. \1#' |
	sort -u)
if [ -z "$targets" ]; then
	echo "fuzz.sh: no fuzz targets found" >&2
	exit 1
fi

failed=()
while read -r dir target; do
	printf '==== %s ./%s (%s)\n' "$target" "$dir" "$duration"
	# A new interesting input is minimized for up to -fuzzminimizetime
	# (default 60 s, and executions are not counted meanwhile): with a
	# target that takes a millisecond, that eats a short run whole.
	if ! go test -run '^$' -fuzz "^${target}\$" -fuzztime "$duration" -fuzzminimizetime 5s "./$dir"; then
		failed+=("$dir $target")
	fi
done <<<"$targets"

if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz.sh: failing targets (inputs in <package>/testdata/fuzz/<target>/):" >&2
	printf '  %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "fuzz.sh: every target ran $duration without a failure"
