#!/usr/bin/env bash
# vm-timeout: 600
# Real server: php-fpm 8.2 from Debian's packages with a static pool of 8
# children, warmed with FastCGI requests for a PHP page (www/index.php).
# Then, with the load stopped: `mergemem scan --comm php-fpm8.2` equals the
# independent count (count_pages.c); `mergemem merge --comm php-fpm8.2` (root
# master, www-data children: no extra flag) exits 0 and achieves >= 95% of
# its prediction; ksmd's settings are as before; php-fpm answers as before.
. "$(dirname "$0")/servers_lib.sh"

fpm_start
fcgi_run 200 "$ST/body.before"
pids=$(pgrep -x "$FPM_COMM" | sort -n | tr '\n' ' ')
sleep 2

check_scan_merge "$FPM_COMM" --comm "$FPM_COMM"

[[ $(pgrep -x "$FPM_COMM" | sort -n | tr '\n' ' ') == "$pids" ]] || fail "$FPM_COMM processes changed: $pids"
ok "the same $FPM_COMM processes: $pids"
fcgi_run 200 "$ST/body.after"
cmp "$ST/body.before" "$ST/body.after" || fail "the page body changed after the merge"
ok "the same page body ($(wc -c <"$ST/body.after") bytes, sha1 $(sha1sum <"$ST/body.after" | cut -c1-12))"
grep -iE 'SIGSEGV|exited on signal' /var/log/php-fpm.log && fail "a child crashed"
ok "no child crashed"
