// SPDX-License-Identifier: GPL-2.0
/* Feature probe: mm->flags is read through mm_flags_test() (6.18+). */
#include <linux/mm.h>
#include <linux/sched/mm.h>

bool mergemem_probe(struct mm_struct *mm);
bool mergemem_probe(struct mm_struct *mm)
{
	return mm_flags_test(MMF_OOM_SKIP, mm);
}
