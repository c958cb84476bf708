#!/usr/bin/env bash
# vm-timeout: 1800
# vm-skip-kernel: ^7\. sid's kernel: the podman of the host (Debian 12) is used here too, but the 7.x guests were not tried yet
# A multi-tenant container host (real podman containers, containers_lib.sh):
# two tenants, pods tenant-a and tenant-b, each 3 php-fpm replicas whose
# workers all run as uid 33, with the same code and data. Checks:
# - scan of one container equals the independent counter (count_pages),
#   the processes held still;
# - merge --comm php-fpm8.2, twice (as a timer runs it), merge --all, and
#   merge --pod tenant-b (refused, exit 9, naming the pod holding KSM) never
#   leave a page frame mapped by processes of both tenants: the PFN check of
#   cross_tenant.ts, written from the kernel's interfaces;
# - the merges exit 0, merge one tenant's uid 33 (its own replicas share),
#   and every replica still answers;
# - bad input: an unknown container (exit 3, the containers there are).
set -euo pipefail
# shellcheck source=mergemem_vm_lib.sh
. "$(dirname "$0")/mergemem_vm_lib.sh"
# shellcheck source=containers_lib.sh
. "$(dirname "$0")/containers_lib.sh"
ok() { echo "ok: [${SECONDS}s] $*"; }
fail() {
	echo "FAIL: $*"
	exit 1
}
M() { "$DENO" run -A "$REPO/main.ts" "$@"; }
js() { "$DENO" eval "$1"; } # a tiny JSON check, the input on stdin

containers_setup
tenant_start tenant-a 3
tenant_start tenant-b 3
FPM=$(basename "$CT_FPM")
pids_a=$(tenant_pids tenant-a | paste -sd,)
pids_b=$(tenant_pids tenant-b | paste -sd,)
ok "tenant-a: $pids_a; tenant-b: $pids_b"
tenant_answer tenant-a
tenant_answer tenant-b
# Pages touched by requests first, so that both tenants have the same data.
cross() { "$DENO" run -A "$G/cross_tenant.ts" "a=$pids_a" "b=$pids_b"; }
no_cross() {
	local out
	out=$(cross)
	echo "cross_tenant: $out"
	echo "$out" | js 'const r = JSON.parse(await new Response(Deno.stdin.readable).text()); Deno.exit(r.cross_tenant_frames === 0 && r.cross_tenant_unreadable === 0 ? 0 : 1)' ||
		fail "$1: page frames shared across the tenants"
	ok "$1: no page frame shared across the tenants"
}
no_cross "before any merge"

t0=$SECONDS
podman ps --format json >/dev/null
ok "podman ps takes $((SECONDS - t0)) s here (mergemem asks it for names)"
# Scan of one container against the independent counter, held still.
pid1=$(podman inspect -f '{{.State.Pid}}' tenant-a-1)
c1=$(ct_cgroup_procs "$(ct_cgroup "$pid1")" | sort -n | paste -sd' ')
# shellcheck disable=SC2086
kill -STOP $c1
scan=$(M scan --container tenant-a-1 --json) || { kill -CONT $c1; fail "scan --container tenant-a-1 failed"; }
count=$("$G/count_pages" $(printf -- '--pid %s ' $c1)) || { kill -CONT $c1; fail "count_pages failed"; }
# shellcheck disable=SC2086
kill -CONT $c1
echo "$scan" >/tmp/scan.json
echo "$count" >/tmp/count.json
js '
const s = JSON.parse(Deno.readTextFileSync("/tmp/scan.json"));
const c = JSON.parse(Deno.readTextFileSync("/tmp/count.json"));
const F = ["pages_present", "pages_zero", "pages_duplicate", "pages_shared_already", "saveable_pages"];
const pids = s.processes.map((p) => p.pid).sort((a, b) => a - b).join(",");
const want = c.processes.map((p) => p.pid).sort((a, b) => a - b).join(",");
const diff = F.filter((k) => s.totals[k] !== c.totals[k]);
console.log(`scan ${F.map((k) => k + "=" + s.totals[k]).join(" ")}`);
console.log(`count ${F.map((k) => k + "=" + c.totals[k]).join(" ")}`);
const named = s.processes.every((p) => p.container?.name === "tenant-a-1" && p.pod?.kind === "podman" && p.pod?.name === "tenant-a");
if (!named || pids !== want) console.log(`pids ${pids} / ${want}; ${JSON.stringify(s.processes.map((p) => [p.pid, p.container, p.pod]))}`);
Deno.exit(pids === want && diff.length === 0 && named ? 0 : 1);
' || fail "scan --container tenant-a-1 differs from count_pages, or does not name the container and pod"
ok "scan --container tenant-a-1 equals count_pages and names container and pod"

# A timer's merges: by command, twice; then everything.
m1=$(M merge --comm "$FPM" --json) || fail "merge --comm $FPM (1) exit $?"
echo "$m1" | js '
const r = JSON.parse(await new Response(Deno.stdin.readable).text());
const t = r.trust_domain;
console.log(`domain=${t.domain} policy=${t.policy} processes=${r.processes.length} skipped_by_policy=${t.skipped_by_policy.length} predicted=${r.predicted_saveable_pages} achieved=${r.achieved_pages}`);
Deno.writeTextFileSync("/tmp/domain", t.domain);
Deno.exit(/^pod tenant-[ab], uid 33$/.test(t.domain) && r.achieved_pages > 0 && r.processes.every((p) => p.uid === 33) ? 0 : 1);
' || fail "merge --comm: not one pod's uid 33, or nothing achieved"
domain=$(cat /tmp/domain)
mine=${domain#pod }
mine=${mine%%,*}
other=tenant-b
[[ $mine == tenant-b ]] && other=tenant-a
ok "merge --comm $FPM merged $domain"
no_cross "after merge --comm"
M merge --comm "$FPM" --json >/tmp/m2.json || fail "merge --comm $FPM (2) exit $?"
js 'const r = JSON.parse(Deno.readTextFileSync("/tmp/m2.json")); Deno.exit(r.trust_domain.domain === Deno.readTextFileSync("/tmp/domain") ? 0 : 1)' ||
	fail "the second merge --comm chose another domain"
ok "merge --comm again: the same domain (it holds KSM)"
M merge --all --json >/tmp/m3.json || fail "merge --all exit $?"
js 'const r = JSON.parse(Deno.readTextFileSync("/tmp/m3.json")); Deno.exit(r.trust_domain.domain === Deno.readTextFileSync("/tmp/domain") ? 0 : 1)' ||
	fail "merge --all chose another domain"
ok "merge --all: the same domain"
set +e
err=$(M merge --pod "$other" 2>&1 >/dev/null)
rc=$?
set -e
echo "$err"
((rc == 9)) || fail "merge --pod $other: exit $rc, not 9"
[[ $err == *"another trust domain: pod $mine, uid 33 ("* ]] || fail "the refusal does not name pod $mine"
ok "merge --pod $other refused (exit 9), naming pod $mine"
no_cross "after every merge"

# Each tenant as configured: the merged one shares pages among its own
# replicas; the other has nothing mergeable.
merging_sum() { local s=0 p; for p in ${1//,/ }; do s=$((s + $(cat "/proc/$p/ksm_merging_pages" 2>/dev/null || echo 0))); done; echo $s; }
[[ $mine == tenant-a ]] && { in=$pids_a; out=$pids_b; } || { in=$pids_b; out=$pids_a; }
mi=$(merging_sum "$in")
mo=$(merging_sum "$out")
((mi > 0 && mo == 0)) || fail "ksm_merging_pages: $mine $mi, $other $mo"
ok "ksm_merging_pages: $mine $mi, $other $mo"
tenant_answer tenant-a
tenant_answer tenant-b
ok "every replica still answers"

set +e
err=$(M scan --container no-such-ctr 2>&1 >/dev/null)
rc=$?
set -e
echo "$err"
((rc == 3)) && [[ $err == *"no container 'no-such-ctr' is running (containers: "*"tenant-a-1"* ]] ||
	fail "unknown container: exit $rc"
ok "an unknown container: exit 3, the containers there are"
# (No unmerge: the containers' exit at cleanup ends their marks; each
# mergemem run costs about 30 s in a TCG guest.)
