// SPDX-License-Identifier: GPL-2.0
/* Feature probe: vm_flags_reset() exists (6.3+). */
#include <linux/mm.h>

void mergemem_probe(struct vm_area_struct *vma);
void mergemem_probe(struct vm_area_struct *vma)
{
	vm_flags_reset(vma, vma->vm_flags);
}
