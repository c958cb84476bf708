# shellcheck shell=bash
# Sourced by scripts/test-deb.sh and scripts/build-image.sh: the host's
# Debian mirrors, to build a root from the same mirrors apt uses here.
#
#   host_sources          "URI SUITE" lines of the host's Debian sources
#                         (deb822 .sources and one-line .list files)
#   host_mirror SUITE     the first URI of SUITE, or nothing
#   sources_list MIRROR UPDATES SECURITY
#                         a bookworm sources.list of those mirrors (an
#                         empty UPDATES or SECURITY is left out)

host_sources() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk 'BEGIN { RS = ""; FS = "\n" }
		{
			types = uris = suites = ""; enabled = 1
			for (i = 1; i <= NF; i++) {
				if ($i ~ /^Types:/) types = substr($i, 7)
				if ($i ~ /^URIs:/) uris = substr($i, 6)
				if ($i ~ /^Suites:/) suites = substr($i, 8)
				if ($i ~ /^Enabled: *no/) enabled = 0
			}
			if (!enabled || types !~ /(^| )deb( |$)/) next
			n = split(uris, u, " "); m = split(suites, s, " ")
			for (a = 1; a <= n; a++) for (b = 1; b <= m; b++) print u[a], s[b]
		}' "$f"
	done
	cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		sed -n 's/^deb \(\[[^]]*\] \)\{0,1\}\([^ ]*\) \([^ ]*\) .*/\2 \3/p' || true
}

host_mirror() {
	host_sources | awk -v suite="$1" '$2 == suite { print $1; exit }'
}

sources_list() {
	echo "deb $1 bookworm main"
	[ -z "$2" ] || echo "deb $2 bookworm-updates main"
	[ -z "$3" ] || echo "deb $3 bookworm-security main"
}
