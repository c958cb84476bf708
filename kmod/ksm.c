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
 *
 * UNMERGE differs from madvise(): ksm_madvise(MADV_UNMERGEABLE) walks every
 * page of the range it is given under the mmap write lock, and its only
 * exits are the caller's signals and the target's exit, which cannot
 * happen while we hold an mm reference. On a huge sparse VMA that would
 * block the target's faults, its exit, readers of /proc/PID/cmdline and the
 * OOM reaper for a long time. So a VMA is unmarked first, in a short step
 * that also stops ksmd from merging anything more in it, and its merged
 * pages are then unshared in bounded chunks, the lock dropped between
 * chunks.
 */
#include <linux/err.h>
#include <linux/mm.h>
#include <linux/mman.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/sizes.h>
#include <linux/uaccess.h>
#include <linux/mergemem.h>

#include "compat.h"
#include "ksm.h"
#include "target.h"

/* Bytes unmerged per hold of the mmap write lock. */
#define MERGEMEM_UNMERGE_CHUNK	SZ_2M

/* The whole VMA's flags changed as ksm_madvise(@advice) decides. */
static int vma_mark(struct vm_area_struct *vma, int advice)
{
	vm_flags_t flags = vma->vm_flags;
	unsigned long end = vma->vm_end;
	int err;

	/*
	 * For MADV_UNMERGEABLE this also unshares the first page: no range
	 * is empty for every kernel's ksm_madvise(), and one page is short.
	 */
	if (advice == MADV_UNMERGEABLE)
		end = vma->vm_start + PAGE_SIZE;
	err = mergemem_ksm_madvise(vma, vma->vm_start, end, advice, &flags);
	if (!err)
		mergemem_vm_flags_reset(vma, flags);
	return err;
}

static int range_merge(struct mm_struct *mm, struct mergemem_range_args *args)
{
	struct vm_area_struct *vma;
	int err = 0;

	VMA_ITERATOR(vmi, mm, args->start);

	if (mmap_write_lock_killable(mm))
		return -EINTR;
	for_each_vma_range(vmi, vma, args->end) {
		if (vma->vm_flags & VM_MERGEABLE) {
			args->vmas_unchanged++;
			continue;
		}
		err = vma_mark(vma, MADV_MERGEABLE);
		if (err)
			break;
		if (vma->vm_flags & VM_MERGEABLE) {
			args->vmas_changed++;
			args->bytes_changed += vma->vm_end - vma->vm_start;
		} else {
			args->vmas_skipped++;
		}
		cond_resched();
	}
	mmap_write_unlock(mm);
	return err;
}

/* The target has exited or exec'd, or the OOM reaper has taken its memory. */
static bool target_gone(struct mm_struct *mm)
{
	return atomic_read(&mm->mm_users) <= 1 ||
	       mergemem_mm_flags_test(MMF_OOM_SKIP, mm);
}

/*
 * Unshare the merged pages of [@start, @end), a VMA that is no longer
 * VM_MERGEABLE, one chunk per mmap lock hold. Between chunks the VMA is
 * found again by address: the target may have unmapped or changed parts
 * of it meanwhile.
 */
static int unmerge_pages(struct mm_struct *mm, unsigned long start,
			 unsigned long end)
{
	unsigned long addr = start;
	int err = 0;

	while (addr < end && !err) {
		struct vm_area_struct *vma;
		unsigned long next;
		vm_flags_t flags;

		if (fatal_signal_pending(current))
			return -EINTR;
		if (target_gone(mm))
			return -ESRCH;
		if (mmap_write_lock_killable(mm))
			return -EINTR;
		vma = find_vma(mm, addr);
		if (!vma || vma->vm_start >= end) {
			mmap_write_unlock(mm);
			break;
		}
		addr = max(addr, vma->vm_start);
		next = min3(addr + MERGEMEM_UNMERGE_CHUNK, vma->vm_end, end);
		/*
		 * ksm_madvise() skips a VMA whose flags lack VM_MERGEABLE:
		 * it reads them from @flags, which are then discarded.
		 */
		flags = vma->vm_flags | VM_MERGEABLE;
		if (vma->anon_vma)
			err = mergemem_ksm_madvise(vma, addr, next,
						   MADV_UNMERGEABLE, &flags);
		mmap_write_unlock(mm);
		addr = next;
		cond_resched();
	}
	return err;
}

/*
 * After a failed unmerge_pages(), mark the VMA at [@start, @end) again if
 * it is still there: the VMA then stays as madvise() leaves it when
 * interrupted, and a retry unmerges what is left. Not killable: the caller
 * may have a fatal signal pending, and the lock is held only briefly by
 * anyone (our chunks included).
 */
static void vma_remark(struct mm_struct *mm, unsigned long start,
		       unsigned long end)
{
	struct vm_area_struct *vma;

	mmap_write_lock(mm);
	vma = vma_lookup(mm, start);
	if (vma && vma->vm_start == start && vma->vm_end == end &&
	    !(vma->vm_flags & VM_MERGEABLE))
		vma_mark(vma, MADV_MERGEABLE);
	mmap_write_unlock(mm);
}

static int range_unmerge(struct mm_struct *mm,
			 struct mergemem_range_args *args)
{
	unsigned long addr = args->start;
	int err = 0;

	while (addr < args->end) {
		struct vm_area_struct *vma;
		unsigned long start, end;
		bool pages;

		if (mmap_write_lock_killable(mm))
			return -EINTR;
		vma = find_vma(mm, addr);
		if (!vma || vma->vm_start >= args->end) {
			mmap_write_unlock(mm);
			break;
		}
		start = vma->vm_start;
		end = vma->vm_end;
		addr = end;
		if (!(vma->vm_flags & VM_MERGEABLE)) {
			args->vmas_unchanged++;
			mmap_write_unlock(mm);
			continue;
		}
		err = vma_mark(vma, MADV_UNMERGEABLE);
		if (!err && (vma->vm_flags & VM_MERGEABLE)) {
			args->vmas_skipped++;
			mmap_write_unlock(mm);
			continue;
		}
		/* Without an anon_vma the VMA never had a private page. */
		pages = vma->anon_vma;
		mmap_write_unlock(mm);
		if (err)
			break;
		if (pages) {
			err = unmerge_pages(mm, start + PAGE_SIZE, end);
			if (err) {
				if (err != -ESRCH)
					vma_remark(mm, start, end);
				break;
			}
		}
		args->vmas_changed++;
		args->bytes_changed += end - start;
		cond_resched();
	}
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
	    !mergemem_user_range_ok(args.start, args.end))
		return -EINVAL;
	args.vmas_changed = 0;
	args.bytes_changed = 0;
	args.vmas_unchanged = 0;
	args.vmas_skipped = 0;

	/* Marking changes the target as writing to its memory would. */
	mm = mergemem_target_get(args.mem_fd, FMODE_WRITE);
	if (IS_ERR(mm)) {
		err = PTR_ERR(mm);
	} else {
		err = merge ? range_merge(mm, &args) : range_unmerge(mm, &args);
		mmput(mm);
	}
	/* unmerge_ksm_pages() reports any pending signal as -ERESTARTSYS. */
	if (err == -ERESTARTSYS || err == -ERESTARTNOINTR)
		err = -EINTR;

	if (copy_to_user(&uargs->vmas_changed, &args.vmas_changed,
			 sizeof(args) - offsetof(typeof(args), vmas_changed)) &&
	    !err)
		err = -EFAULT;
	return err;
}
