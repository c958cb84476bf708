// SPDX-License-Identifier: GPL-2.0
/* Feature probe: ksm_madvise() takes a vm_flags_t * as its last argument. */
#include <linux/mm.h>
#include <linux/ksm.h>
#include <linux/mman.h>

int mergemem_probe(struct vm_area_struct *vma, vm_flags_t *flags);
int mergemem_probe(struct vm_area_struct *vma, vm_flags_t *flags)
{
	return ksm_madvise(vma, vma->vm_start, vma->vm_end, MADV_MERGEABLE,
			   flags);
}
