// SPDX-License-Identifier: GPL-2.0
/* Feature probe: vma_start_write() exists (6.4+). */
#include <linux/mm.h>

void mergemem_probe(struct vm_area_struct *vma);
void mergemem_probe(struct vm_area_struct *vma)
{
	vma_start_write(vma);
}
