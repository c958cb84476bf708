#!/usr/bin/env bash
# vm-timeout: 600
# Real server: apache2 prefork + mod_php 8.2 from Debian's packages, a fixed
# pool of 8 workers warmed with ab on a PHP page (www/index.php). Then, with
# the load stopped: `mergemem scan --comm apache2` equals the independent
# count (count_pages.c); `mergemem merge --comm apache2` (root parent, www-data
# workers: two uids, no extra flag) exits 0 and achieves >= 95% of its
# prediction; ksmd's settings are as before; apache answers as before.
. "$(dirname "$0")/servers_lib.sh"

apache_start
http_get /index.php "$ST/body.before"
ab_run 200 "$ST/ab.warm"
pids=$(pgrep -x apache2 | sort -n | tr '\n' ' ')
# Idle: the parent's once-a-second maintenance sees all workers idle.
sleep 2

check_scan_merge apache2 --comm apache2

[[ $(pgrep -x apache2 | sort -n | tr '\n' ' ') == "$pids" ]] || fail "apache2 processes changed: $pids"
ok "the same apache2 processes: $pids"
ab_run 200 "$ST/ab.after"
http_get /index.php "$ST/body.after"
cmp "$ST/body.before" "$ST/body.after" || fail "the page body changed after the merge"
[[ $(grep '^Document Length' "$ST/ab.warm") == "$(grep '^Document Length' "$ST/ab.after")" ]] ||
	fail "ab: document length changed"
ok "the same page body ($(wc -c <"$ST/body.after") bytes, sha1 $(sha1sum <"$ST/body.after" | cut -c1-12))"
grep -E 'AH[0-9]+: .*(segfault|Segmentation|exit signal)' "$APACHE_RUN/error.log" && fail "a worker crashed"
ok "no worker crashed"
