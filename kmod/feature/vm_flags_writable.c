// SPDX-License-Identifier: GPL-2.0
/* Feature probe: vma->vm_flags is writable in place (the legacy, < 6.3 way). */
#include <linux/mm.h>

void mergemem_probe(struct vm_area_struct *vma, vm_flags_t flags);
void mergemem_probe(struct vm_area_struct *vma, vm_flags_t flags)
{
	vma->vm_flags = flags;
}
