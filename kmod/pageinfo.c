// SPDX-License-Identifier: GPL-2.0
/*
 * MERGEMEM_IOC_PAGEINFO: describe and hash a range of another process's
 * pages in place.
 *
 * Pages are looked up with get_user_pages_remote(FOLL_NOFAULT) under the
 * target's mmap read lock: that never faults, swaps in or allocates a page,
 * and, since it takes a plain reference and never FOLL_PIN, it never unshares
 * an anonymous or KSM page either. It does add FOLL_TOUCH, which marks each
 * page it returns accessed (see the uapi header). The lock is taken per batch and dropped
 * before the results are copied to the caller, which may fault on its own
 * mm (the target may be the caller itself).
 */
#include <linux/err.h>
#include <linux/highmem.h>
#include <linux/hugetlb.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/page-flags.h>
#include <linux/sched/mm.h>
#include <linux/sched/signal.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/xxhash.h>
#include <linux/mergemem.h>

#include "compat.h"
#include "pageinfo.h"
#include "target.h"

/* Pages looked up per mmap lock hold. */
#define MERGEMEM_BATCH 128

struct mergemem_batch {
	struct page *pages[MERGEMEM_BATCH];
	struct mergemem_pageinfo info[MERGEMEM_BATCH];
};

/* xxh64 of a zero-filled page, reported for the shared zero page. */
static u64 zero_page_hash;

int mergemem_pageinfo_init(void)
{
	void *zeroes = kzalloc(PAGE_SIZE, GFP_KERNEL);

	if (!zeroes)
		return -ENOMEM;
	zero_page_hash = xxh64(zeroes, PAGE_SIZE, 0);
	kfree(zeroes);
	return 0;
}

static void describe_page(struct page *page, struct mergemem_pageinfo *pi)
{
	struct folio *folio = page_folio(page);
	u32 flags = MERGEMEM_PI_PRESENT | MERGEMEM_PI_HASHED;
	void *kaddr;

	if (is_zero_pfn(page_to_pfn(page))) {
		pi->hash = zero_page_hash;
		pi->flags = flags | MERGEMEM_PI_ZERO_PAGE |
			    MERGEMEM_PI_ZEROFILLED;
		return;
	}
	if (PageAnon(page))
		flags |= MERGEMEM_PI_ANON;
	if (folio_test_ksm(folio))
		flags |= MERGEMEM_PI_KSM;
	if (folio_test_large(folio) && !folio_test_hugetlb(folio))
		flags |= MERGEMEM_PI_THP;

	kaddr = kmap_local_page(page);
	pi->hash = xxh64(kaddr, PAGE_SIZE, 0);
	/* Only a page with the zero page's hash can be zero-filled. */
	if (pi->hash == zero_page_hash && !memchr_inv(kaddr, 0, PAGE_SIZE))
		flags |= MERGEMEM_PI_ZEROFILLED;
	kunmap_local(kaddr);
	pi->flags = flags;
}

/*
 * Describe @n pages from @addr into @b->info. The caller holds the mmap
 * read lock. Holes between VMAs are skipped at once; inside a VMA,
 * get_user_pages_remote() stops at the first page it cannot return, which
 * is then reported as absent and stepped over.
 */
static int describe_batch(struct mm_struct *mm, unsigned long addr,
			  unsigned long n, struct mergemem_batch *b)
{
	unsigned long i = 0;

	memset(b->info, 0, n * sizeof(b->info[0]));
	while (i < n) {
		unsigned long a = addr + i * PAGE_SIZE;
		struct vm_area_struct *vma = find_vma(mm, a);
		unsigned long chunk, j;
		long got;

		if (!vma)
			break;
		if (vma->vm_start > a) {
			i += min(n - i, (vma->vm_start - a) >> PAGE_SHIFT);
			continue;
		}
		chunk = min(n - i, (vma->vm_end - a) >> PAGE_SHIFT);
		/*
		 * hugetlb GUP faults pages in even with FOLL_NOFAULT on older
		 * kernels, and KSM cannot merge hugetlb pages anyway. GUP
		 * refuses the whole VMA when it is VM_IO, VM_PFNMAP or not
		 * readable: asking page by page would only repeat that.
		 */
		if (is_vm_hugetlb_page(vma) ||
		    vma->vm_flags & (VM_IO | VM_PFNMAP) ||
		    !(vma->vm_flags & VM_READ)) {
			i += chunk;
			continue;
		}
		got = mergemem_gup_remote(mm, a, chunk, FOLL_NOFAULT, b->pages);
		if (got <= 0) {
			if (fatal_signal_pending(current))
				return -EINTR;
			i++;
			continue;
		}
		for (j = 0; j < got; j++) {
			describe_page(b->pages[j], &b->info[i + j]);
			put_page(b->pages[j]);
		}
		i += got;
		if (got < chunk)
			i++;
	}
	return 0;
}

long mergemem_ioctl_pageinfo(struct mergemem_pageinfo_args __user *uargs)
{
	struct mergemem_pageinfo_args args;
	struct mergemem_pageinfo __user *out;
	struct mergemem_batch *b;
	struct mm_struct *mm;
	u64 done = 0;
	long err = 0;

	if (copy_from_user(&args, uargs, sizeof(args)))
		return -EFAULT;
	if (args.flags || !args.npages)
		return -EINVAL;
	if (args.npages > MERGEMEM_PAGEINFO_MAX)
		return -E2BIG;
	if (args.start & ~PAGE_MASK ||
	    !mergemem_user_range_ok(args.start,
				    args.start + (args.npages << PAGE_SHIFT)))
		return -EINVAL;
	out = u64_to_user_ptr(args.out);

	mm = mergemem_target_get(args.mem_fd, FMODE_READ);
	if (IS_ERR(mm)) {
		err = PTR_ERR(mm);
		goto out_done;
	}
	b = kmalloc(sizeof(*b), GFP_KERNEL);
	if (!b) {
		err = -ENOMEM;
		goto out_mm;
	}

	while (done < args.npages) {
		unsigned long n = min_t(u64, args.npages - done,
					MERGEMEM_BATCH);
		unsigned long left;

		if (fatal_signal_pending(current)) {
			err = -EINTR;
			break;
		}
		if (mmap_read_lock_killable(mm)) {
			err = -EINTR;
			break;
		}
		err = describe_batch(mm, args.start + done * PAGE_SIZE, n, b);
		mmap_read_unlock(mm);
		if (err)
			break;
		left = copy_to_user(out + done, b->info, n * sizeof(b->info[0]));
		if (left) {
			done += n - DIV_ROUND_UP(left, sizeof(b->info[0]));
			err = -EFAULT;
			break;
		}
		done += n;
		cond_resched();
	}

	kfree(b);
out_mm:
	mmput(mm);
out_done:
	if (put_user(done, &uargs->done) && !err)
		err = -EFAULT;
	return err;
}
