#!/bin/sh
# Prints the Debian upstream version for a `git describe --tags --always
# --dirty` string (default: this checkout's), so that later commits sort
# higher under dpkg --compare-versions:
#   v1.2.3                 -> 1.2.3
#   v1.2.3-rc1             -> 1.2.3~rc1        (pre-releases sort before 1.2.3)
#   v1.2.3-4-gabc1234      -> 1.2.3+4.gabc1234 (4 commits after v1.2.3)
#   abc1234 (no tag)       -> 0.0.0~gitYYYYMMDDhhmmss.abc1234 (HEAD's commit time, UTC)
#   any of them + -dirty   -> the same + .dirty
#   anything else (dev)    -> 0.0.0~dev
# VIPCAST_SNAPSHOT_DATE overrides the commit time (for tests).
set -eu

desc=${1:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}

dirty=
case "$desc" in
*-dirty)
	desc=${desc%-dirty}
	dirty=.dirty
	;;
esac

snapshot_date() {
	if [ -n "${VIPCAST_SNAPSHOT_DATE:-}" ]; then
		echo "$VIPCAST_SNAPSHOT_DATE"
	else
		TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S 2>/dev/null || echo 0
	fi
}

if echo "$desc" | grep -Eq '^[0-9a-f]{4,40}$'; then
	# No tag reachable: describe printed an abbreviated hash.
	echo "0.0.0~git$(snapshot_date).$desc$dirty"
	exit 0
fi

base=$desc
after=
if echo "$desc" | grep -Eq -- '-[0-9]+-g[0-9a-f]+$'; then
	after=$(echo "$desc" | sed -E 's/^.*-([0-9]+)-g([0-9a-f]+)$/+\1.g\2/')
	base=$(echo "$desc" | sed -E 's/-[0-9]+-g[0-9a-f]+$//')
fi
base=${base#v}
# Tag suffixes (1.2.3-rc1) are pre-releases: '~' sorts before the release.
base=$(echo "$base" | tr '-' '~')
if ! echo "$base" | grep -Eq '^[0-9][A-Za-z0-9.+~]*$'; then
	echo "0.0.0~dev"
	exit 0
fi
echo "$base$after$dirty"
