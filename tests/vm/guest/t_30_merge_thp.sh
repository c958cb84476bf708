#!/usr/bin/env bash
# vm-timeout: 900
# Merges that last under transparent huge pages: after a default merge
# (MADV_NOHUGEPAGE on the chosen THP-eligible mappings) and three full
# passes of a fast khugepaged, >= 95% of the pages saved (counted by PFN)
# are still saved; unmerge gives the mappings their THP eligibility back.
. "$(dirname "$0")/mergemem_vm_lib.sh"
e2e thp
