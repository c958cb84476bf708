// SPDX-License-Identifier: GPL-2.0
/*
 * MERGEMEM_IOC_MERGE and MERGEMEM_IOC_UNMERGE: madvise(MADV_MERGEABLE) and
 * madvise(MADV_UNMERGEABLE) on another process's VMAs.
 *
 * This follows the in-tree users of ksm_madvise() (powerpc KVM): the mmap
 * write lock, the VMA write lock where per-VMA locks exist, and the flags
 * written back with vm_flags_reset() where vm_flags is read-only. split_vma()
 * is not exported, so only whole VMAs are marked. ksm_madvise() returns 0
 * both for a VMA it marked and for one it refuses (shared, VM_IO, VM_PFNMAP,
 * hugetlb, DAX, ...), so the outcome is read back from vm_flags.
 */
#include <linux/err.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/uaccess.h>
#include <linux/mergemem.h>

#include "compat.h"
#include "ksm.h"
#include "target.h"

static int range_apply(struct mm_struct *mm, struct mergemem_range_args *args,
		       bool merge)
{
	struct vm_area_struct *vma;
	int err = 0;

	VMA_ITERATOR(vmi, mm, args->start);

	if (mmap_write_lock_killable(mm))
		return -EINTR;
	for_each_vma_range(vmi, vma, args->end) {
		bool was = vma->vm_flags & VM_MERGEABLE;

		if (was == merge) {
			args->vmas_unchanged++;
			continue;
		}
		err = mergemem_ksm_madvise(vma, merge ? MADV_MERGEABLE :
						  MADV_UNMERGEABLE);
		if (err)
			break;
		if (!!(vma->vm_flags & VM_MERGEABLE) == merge) {
			args->vmas_changed++;
			args->bytes_changed += vma->vm_end - vma->vm_start;
		} else {
			args->vmas_skipped++;
		}
		cond_resched();
	}
	mmap_write_unlock(mm);

	/* unmerge_ksm_pages() reports a pending signal as -ERESTARTSYS. */
	if (err == -ERESTARTSYS || err == -ERESTARTNOINTR)
		err = -EINTR;
	return err;
}

long mergemem_ioctl_range(struct mergemem_range_args __user *uargs,
			  bool merge)
{
	struct mergemem_range_args args;
	struct mm_struct *mm;
	long err;

	if (copy_from_user(&args, uargs, sizeof(args)))
		return -EFAULT;
	if (args.flags || args.start & ~PAGE_MASK || args.end & ~PAGE_MASK ||
	    args.end <= args.start)
		return -EINVAL;
	args.vmas_changed = 0;
	args.bytes_changed = 0;
	args.vmas_unchanged = 0;
	args.vmas_skipped = 0;

	mm = mergemem_target_get(args.mem_fd);
	if (IS_ERR(mm)) {
		err = PTR_ERR(mm);
	} else {
		err = range_apply(mm, &args, merge);
		mmput(mm);
	}

	if (copy_to_user(&uargs->vmas_changed, &args.vmas_changed,
			 sizeof(args) - offsetof(typeof(args), vmas_changed)) &&
	    !err)
		err = -EFAULT;
	return err;
}
