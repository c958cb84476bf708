#!/usr/bin/env bash
# vm-timeout: 300
# SIGINT in the middle of the ksmd burst: exit 130, every ksmd setting back
# exactly as before, worker memory intact.
. "$(dirname "$0")/mergemem_vm_lib.sh"
e2e sigint
