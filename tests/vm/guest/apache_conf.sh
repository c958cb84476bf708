# shellcheck shell=bash
# The apache2 of the real-server tests and benchmarks, in one place:
# sourced by servers_lib.sh (in the guests) and bench/thp_price_native.sh
# (on the host). Debian's default module set (a2enmod's defaults), prefork
# and mod_php, with a fixed pool: StartServers = MinSpareServers =
# MaxSpareServers = MaxRequestWorkers, no recycling (a pool that forks or
# reaps workers between two counts changes the figures being compared).

APACHE_MODULES=/usr/lib/apache2/modules

# apache_mod_php: the newest mod_php installed, or nothing.
apache_mod_php() {
	find "$APACHE_MODULES" -name 'libphp*.so' | sort -V | tail -n1
}

# apache_conf LISTEN DOCROOT RUNDIR POOL: prints a configuration serving
# DOCROOT on LISTEN (host:port), with its pid file, mutex and error log in
# RUNDIR (which www-data must be able to write).
apache_conf() {
	local listen=$1 docroot=$2 rundir=$3 pool=$4 php mod
	php=$(apache_mod_php)
	cat <<EOF
ServerRoot /etc/apache2
ServerName localhost
Listen $listen
PidFile $rundir/apache2.pid
Mutex file:$rundir default
User www-data
Group www-data
ErrorLog $rundir/error.log
LogLevel warn
LoadModule mpm_prefork_module $APACHE_MODULES/mod_mpm_prefork.so
EOF
	for mod in access_compat alias auth_basic authn_core authn_file authz_core authz_host \
		authz_user autoindex deflate dir env filter mime negotiation reqtimeout setenvif status; do
		echo "LoadModule ${mod}_module $APACHE_MODULES/mod_$mod.so"
	done
	cat <<EOF
LoadModule php_module $php
StartServers $pool
MinSpareServers $pool
MaxSpareServers $pool
ServerLimit $pool
MaxRequestWorkers $pool
MaxConnectionsPerChild 0
TypesConfig /etc/mime.types
DocumentRoot $docroot
DirectoryIndex index.php index.html
<Directory $docroot>
	Require all granted
</Directory>
<FilesMatch "\.php$">
	SetHandler application/x-httpd-php
</FilesMatch>
EOF
}

# thp_price_summary ROUNDS: from the associative arrays rps, mean and p99
# (keys MODE.ROUND, MODE nohugepage or keep), prints each mode's medians and
# the ratios nohugepage/keep (t_42_thp_bench.sh, bench/thp_price_native.sh).
thp_price_summary() {
	local rounds=$1 mode r
	local -A m_rps m_mean m_p99
	median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
	ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a / b}'; }
	for mode in nohugepage keep; do
		local vr=() vm=() vp=()
		for ((r = 1; r <= rounds; r++)); do
			vr+=("${rps[$mode.$r]}") vm+=("${mean[$mode.$r]}") vp+=("${p99[$mode.$r]}")
		done
		m_rps[$mode]=$(median "${vr[@]}") m_mean[$mode]=$(median "${vm[@]}") m_p99[$mode]=$(median "${vp[@]}")
		echo "MEDIAN $mode: ${m_rps[$mode]} req/s, mean ${m_mean[$mode]} ms, p99 ${m_p99[$mode]} ms"
	done
	echo "RATIO nohugepage/keep: req/s $(ratio "${m_rps[nohugepage]}" "${m_rps[keep]}")," \
		"mean latency $(ratio "${m_mean[nohugepage]}" "${m_mean[keep]}")," \
		"p99 $(ratio "${m_p99[nohugepage]}" "${m_p99[keep]}")"
}
