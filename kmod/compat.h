/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Differences between the kernels mergemem builds against, selected by the
 * feature probes in feature/ whose results the Makefile writes to config.h.
 */
#ifndef _MERGEMEM_COMPAT_H
#define _MERGEMEM_COMPAT_H

#include "config.h"

#include <linux/ksm.h>
#include <linux/mm.h>

/* get_user_pages_remote() lost its vmas argument in 6.5. */
static inline long mergemem_gup_remote(struct mm_struct *mm,
				       unsigned long start,
				       unsigned long nr_pages,
				       unsigned int gup_flags,
				       struct page **pages)
{
#ifdef MERGEMEM_HAVE_GUP_REMOTE_VMAS
	return get_user_pages_remote(mm, start, nr_pages, gup_flags, pages,
				     NULL, NULL);
#else
	return get_user_pages_remote(mm, start, nr_pages, gup_flags, pages,
				     NULL);
#endif
}

#ifndef MERGEMEM_HAVE_KSM_MADVISE_VM_FLAGS_T
#error "ksm_madvise() does not take a vm_flags_t *; see probes/*/probe.log"
#endif

/*
 * ksm_madvise() on a whole VMA. The caller holds the mmap write lock.
 * With per-VMA locks (6.4+) the VMA must also be write-locked, and since 6.3
 * vm_flags may only be changed through the vm_flags_*() helpers; before
 * that, ksm_madvise() updates vma->vm_flags in place.
 */
static inline int mergemem_ksm_madvise(struct vm_area_struct *vma, int advice)
{
#ifdef MERGEMEM_HAVE_VM_FLAGS_RESET
	vm_flags_t flags = vma->vm_flags;
	int err;

#ifdef MERGEMEM_HAVE_VMA_START_WRITE
	vma_start_write(vma);
#endif
	err = ksm_madvise(vma, vma->vm_start, vma->vm_end, advice, &flags);
	if (!err)
		vm_flags_reset(vma, flags);
	return err;
#else
	return ksm_madvise(vma, vma->vm_start, vma->vm_end, advice,
			   &vma->vm_flags);
#endif
}

#endif /* _MERGEMEM_COMPAT_H */
