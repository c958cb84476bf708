#!/bin/sh
# Prints the path of the pinned Deno (tools/deno/package.json), installing
# it from the npm registry with `npm ci` when it is missing. Needs npm.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
deno="$root/tools/deno/node_modules/deno/deno"
if [ ! -x "$deno" ]; then
	if ! command -v npm >/dev/null 2>&1; then
		echo "ensure-deno: npm is needed to install Deno (apt-get install npm)" >&2
		exit 1
	fi
	(cd "$root/tools/deno" && npm ci --no-audit --no-fund --loglevel=error >&2)
fi
# The package's postinstall links the platform binary into place; when npm
# skips install scripts, do the same here.
if [ ! -x "$deno" ]; then
	for p in "$root"/tools/deno/node_modules/@deno/linux-*/deno; do
		[ -x "$p" ] && ln -f "$p" "$deno" 2>/dev/null || cp "$p" "$deno"
		break
	done
fi
"$deno" --version >/dev/null
echo "$deno"
