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
