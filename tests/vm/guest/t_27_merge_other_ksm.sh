#!/usr/bin/env bash
# vm-timeout: 300
# Another KSM user's merged memory is freed during the burst: achieved,
# measured on the selection's own frames, stays within 2% of the
# prediction while KSM's global pages_sharing delta does not.
. "$(dirname "$0")/mergemem_vm_lib.sh"
e2e otherksm
