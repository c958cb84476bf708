#!/usr/bin/env bash
# vm-timeout: 200
# merge --no-wait marks, leaves ksmd running at its own rate (run=1) and
# returns; ksmd then merges in the background.
. "$(dirname "$0")/mergemem_vm_lib.sh"
e2e nowait
