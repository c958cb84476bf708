#!/usr/bin/env bash
# vm-timeout: 720
# Real server: PostgreSQL 15 from Debian's packages (initdb into tmpfs),
# 8 backends held open by 8 psql sessions, each of which ran catalog-heavy
# queries (information_schema, every function's signature, 60 tables' views
# through query_to_xml). Then, idle: `mergemem scan --user postgres` equals
# the independent count (count_pages.c); `mergemem merge --user postgres`
# exits 0 and achieves >= 95% of its prediction; ksmd's settings are as
# before; every backend returns the same results as before.
. "$(dirname "$0")/servers_lib.sh"

pg_start
cat >"$ST/setup.sql" <<'SQL'
CREATE SCHEMA app;
DO $$
BEGIN
	FOR i IN 1..60 LOOP
		EXECUTE format('CREATE TABLE app.t%s (id serial PRIMARY KEY, name text NOT NULL,
			qty int DEFAULT 0 CHECK (qty >= 0), price numeric(10,2), tags text[],
			created timestamptz DEFAULT now(), note varchar(200))', i);
		EXECUTE format('CREATE INDEX ON app.t%s (name)', i);
		EXECUTE format('INSERT INTO app.t%s (name, qty, price) SELECT ''n'' || g, g, g / 3.0
			FROM generate_series(1, %s) g', i, i);
		EXECUTE format('CREATE VIEW app.v%s AS SELECT id, name, qty * price AS total FROM app.t%s', i, i);
	END LOOP;
END $$;
SQL
cat >"$ST/catalog.sql" <<'SQL'
SELECT count(*), md5(string_agg(table_schema || '.' || table_name || '.' || column_name || ':' || data_type,
	',' ORDER BY table_schema, table_name, ordinal_position)) FROM information_schema.columns;
SELECT count(*), md5(string_agg(p.proname || '(' || pg_get_function_arguments(p.oid) || ')',
	',' ORDER BY p.oid)) FROM pg_proc p;
SELECT count(*), md5(string_agg(c.relname || ':' || pg_get_viewdef(c.oid), ';' ORDER BY c.relname))
	FROM pg_class c WHERE c.relkind = 'v' AND c.relnamespace = 'app'::regnamespace;
SELECT sum((xpath('/row/s/text()', query_to_xml(format('SELECT sum(total) AS s FROM app.v%s', i),
	false, true, '')))[1]::text::numeric) FROM generate_series(1, 60) i;
SELECT count(*) FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
	LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
	LEFT JOIN pg_constraint k ON k.conrelid = c.oid WHERE a.attnum > 0;
SQL
pg_psql -f "$ST/setup.sql" || fail "setup.sql"
pg_sessions
pg_all "$ST/catalog.sql" before
for i in $(seq "$PG_SESSIONS"); do
	cmp "$ST/before.1" "$ST/before.$i" || fail "session $i: other results"
done
sed 's/^/  sql: /' "$ST/before.1"
[[ $(wc -l <"$ST/before.1") -eq 5 ]] || fail "5 results expected"
backends=$(pgrep -u postgres -x postgres | wc -l)
ok "$PG_SESSIONS sessions ran the catalog queries; $backends postgres processes"
sleep 1

check_scan_merge postgres --user postgres

pg_all "$ST/catalog.sql" after
for i in $(seq "$PG_SESSIONS"); do
	cmp "$ST/before.1" "$ST/after.$i" || fail "session $i: results changed after the merge"
done
ok "every session returns the same results after the merge"
[[ $(pgrep -u postgres -x postgres | wc -l) -eq $backends ]] || fail "postgres processes changed"
! grep -E 'terminated by signal|server process .* was terminated' /var/log/postgresql/vm.log || fail "a backend crashed"
ok "no backend crashed"
