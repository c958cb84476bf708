#!/usr/bin/env bash
# vm-timeout: 200
# A selection spanning two uids is refused (exit 9) without --cross-user,
# and accepted with a side-channel warning with it.
. "$(dirname "$0")/mergemem_vm_lib.sh"
e2e crossuser
