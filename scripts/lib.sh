# Shared by the tier scripts (sourced, not run): package installs that wait
# for the package manager's locks, and what a tier does when this machine
# lacks what it needs.

# in_ci: true under CI=true (or CI=1), as CI runs .ci/run.
in_ci() {
	case "${CI:-}" in true | TRUE | True | 1) return 0 ;; *) return 1 ;; esac
}

# skip_tier TIER WHY: the tier cannot run here. Outside CI it says SKIP and
# exits 0; under CI=true it says FAIL and exits 1, so that a green CI run
# means every tier ran.
skip_tier() {
	if in_ci; then
		echo "FAIL $1: $2 (CI=true: a tier that cannot run fails instead of skipping)" >&2
		exit 1
	fi
	echo "SKIP $1: $2"
	exit 0
}

# apt_retry CMD...: runs an apt-get command, waiting (up to 10 minutes) while
# another apt-get or dpkg holds one of its locks, instead of failing on it.
# DPkg::Lock::Timeout covers dpkg's lock, not the package lists' lock that
# 'apt-get update' takes, hence the retries.
apt_retry() {
	local deadline=$((SECONDS + 600)) out rc said=0
	while :; do
		rc=0
		out=$("$@" 2>&1) || rc=$?
		[ "$rc" = 0 ] && return 0
		if [ "$SECONDS" -lt "$deadline" ] && grep -qiE 'could not get lock|unable to lock|unable to acquire' <<<"$out"; then
			[ "$said" = 1 ] || echo "   waiting for the package manager's lock: $(grep -m1 -iE 'lock' <<<"$out")" >&2
			said=1
			sleep 3 # another install holds the lock: try again, up to the deadline
			continue
		fi
		printf '%s\n' "$out" >&2
		return "$rc"
	done
}

# apt_install PACKAGE...: installs Debian packages with apt-get (root only),
# after 'apt-get update', waiting for the package manager's locks.
apt_install() {
	if [ "$(id -u)" != 0 ]; then
		echo "cannot install $*: not root" >&2
		return 1
	fi
	if ! command -v apt-get >/dev/null 2>&1; then
		echo "cannot install $*: no apt-get on this machine" >&2
		return 1
	fi
	echo "== installing $* with apt-get"
	apt_retry apt-get -o DPkg::Lock::Timeout=600 update -qq &&
		apt_retry env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$@"
}

# fuzz_targets: prints "PKG TARGET" for every fuzz target in the module
# (func FuzzX in a _test.go file), PKG as ./dir, sorted.
fuzz_targets() {
	grep -rEo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' . |
		grep -v '^\./\.git/' |
		sed -E 's#^(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]*)$#\1 \2#' |
		sort -u
}

# fuzz_deadline_race OUT: true when a failed 'go test -fuzz' run, whose output
# is in the file OUT, failed only by Go 1.26's fuzzing coordinator race at the
# end of -fuzztime (go.dev/issue/75804, fixed in Go 1.27): a bare "context
# deadline exceeded" while a worker was still in a call, and no failing input.
# The caller also checks that no input was written to testdata/fuzz.
fuzz_deadline_race() {
	grep -q '^    context deadline exceeded$' "$1" &&
		! grep -qE '^    (Failing input written|fuzz_test|panic:)|^panic:' "$1"
}
