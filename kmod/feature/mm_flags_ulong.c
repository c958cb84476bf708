// SPDX-License-Identifier: GPL-2.0
/* Feature probe: mm->flags is a plain unsigned long bit set (the legacy way). */
#include <linux/bitops.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>

bool mergemem_probe(struct mm_struct *mm);
bool mergemem_probe(struct mm_struct *mm)
{
	return test_bit(MMF_OOM_SKIP, &mm->flags);
}
