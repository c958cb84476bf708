// SPDX-License-Identifier: GPL-2.0
/*
 * MERGEMEM_IOC_THP: madvise(MADV_NOHUGEPAGE) on another process's VMAs, and
 * its undo.
 *
 * khugepaged has no exception for KSM: a range whose pages KSM merged is
 * collapsed again into a private huge page when few enough of its entries
 * are shared (max_ptes_shared) or empty (max_ptes_none), copying the merged
 * pages back and undoing the saving. VM_NOHUGEPAGE keeps khugepaged (and
 * huge page faults) out of a VMA, as it keeps them out of the VMAs of
 * processes that use KSM themselves.
 *
 * The flags are changed as hugepage_madvise() changes them, under the mmap
 * write lock and the VMA write lock, for whole VMAs only (split_vma() is not
 * exported). Unlike madvise() the undo can return a VMA to having neither
 * flag: mergemem clears only what it set.
 */
#include <linux/err.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>
#include <linux/uaccess.h>
#include <linux/mergemem.h>

#include "compat.h"
#include "target.h"
#include "thp.h"

/* VMAs transparent huge pages never apply to; left alone. */
#define MERGEMEM_NO_THP_VM_FLAGS (VM_HUGETLB | VM_PFNMAP | VM_IO | \
				  VM_MIXEDMAP | VM_DONTEXPAND)

/* The flags @vma gets from @op; the same flags when it has them already. */
static vm_flags_t thp_flags(vm_flags_t flags, u32 op)
{
	if (op & MERGEMEM_THP_NOHUGEPAGE)
		return (flags & ~VM_HUGEPAGE) | VM_NOHUGEPAGE;
	flags &= ~VM_NOHUGEPAGE;
	if (op & MERGEMEM_THP_HUGEPAGE)
		flags |= VM_HUGEPAGE;
	return flags;
}

static int range_thp(struct mm_struct *mm, struct mergemem_thp_args *args)
{
	struct vm_area_struct *vma;

	VMA_ITERATOR(vmi, mm, args->start);

	if (mmap_write_lock_killable(mm))
		return -EINTR;
	for_each_vma_range(vmi, vma, args->end) {
		vm_flags_t flags = thp_flags(vma->vm_flags, args->flags);

		if (vma->vm_flags & MERGEMEM_NO_THP_VM_FLAGS) {
			args->vmas_skipped++;
			continue;
		}
		if (flags == vma->vm_flags) {
			args->vmas_unchanged++;
			continue;
		}
		if (vma->vm_flags & VM_HUGEPAGE)
			args->vmas_hugepage++;
		mergemem_vma_start_write(vma);
		mergemem_vm_flags_reset(vma, flags);
		args->vmas_changed++;
	}
	mmap_write_unlock(mm);
	return 0;
}

long mergemem_ioctl_thp(struct mergemem_thp_args __user *uargs)
{
	struct mergemem_thp_args args;
	struct mm_struct *mm;
	long err;

	if (copy_from_user(&args, uargs, sizeof(args)))
		return -EFAULT;
	if (args.flags & ~(MERGEMEM_THP_NOHUGEPAGE | MERGEMEM_THP_RESTORE |
			   MERGEMEM_THP_HUGEPAGE) ||
	    !(args.flags & MERGEMEM_THP_NOHUGEPAGE) ==
	    !(args.flags & MERGEMEM_THP_RESTORE) ||
	    (args.flags & MERGEMEM_THP_HUGEPAGE &&
	     !(args.flags & MERGEMEM_THP_RESTORE)) ||
	    args.start & ~PAGE_MASK || args.end & ~PAGE_MASK ||
	    !mergemem_user_range_ok(args.start, args.end))
		return -EINVAL;
	args.vmas_changed = 0;
	args.vmas_hugepage = 0;
	args.vmas_unchanged = 0;
	args.vmas_skipped = 0;

	/* Like MERGE, this changes the target as a write to it would. */
	mm = mergemem_target_get(args.mem_fd, FMODE_WRITE);
	if (IS_ERR(mm))
		return PTR_ERR(mm);
	err = range_thp(mm, &args);
	mmput(mm);

	if (copy_to_user(&uargs->vmas_changed, &args.vmas_changed,
			 sizeof(args) - offsetof(typeof(args), vmas_changed)) &&
	    !err)
		err = -EFAULT;
	return err;
}
