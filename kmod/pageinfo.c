// SPDX-License-Identifier: GPL-2.0
/*
 * MERGEMEM_IOC_PAGEINFO: describe and hash a range of another process's
 * pages in place.
 *
 * Pages are found by reading the target's page tables the way the kernel's
 * GUP-fast does (lockless, interrupts off, a speculative reference checked
 * against the entry again), under the target's mmap read lock. Unlike
 * get_user_pages_remote(), which always adds FOLL_TOUCH, and GUP-fast, which
 * sets PG_referenced, this marks nothing accessed: a scan leaves the target's
 * page aging as it was. It never faults, swaps in, allocates, pins or unshares
 * a page either, so it does not undo KSM merges. The lock is taken per batch
 * and dropped before the results are copied to the caller, which may fault
 * on its own mm (the target may be the caller itself).
 */
#include <linux/err.h>
#include <linux/highmem.h>
#include <linux/irqflags.h>
#include <linux/hugetlb.h>
#include <linux/minmax.h>
#include <linux/mm.h>
#include <linux/page-flags.h>
#include <linux/page_ref.h>
#include <linux/pgtable.h>
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

/*
 * The walk maps page tables through the direct map (pte_offset_kernel()),
 * as GUP-fast does where page tables are never in high memory.
 */
#ifdef CONFIG_HIGHPTE
#error "mergemem reads page tables through the direct map; CONFIG_HIGHPTE is not supported"
#endif

/*
 * VMAs whose pages are never read: those KSM refuses to merge (ksm_madvise()
 * checks the same flags), which also keeps the walk away from memory the
 * direct map may not cover (secretmem is always shared) and from PFN and
 * mixed maps, whose entries need not have a struct page.
 */
#define MERGEMEM_UNREAD_VM_FLAGS (VM_SHARED | VM_MAYSHARE | VM_PFNMAP | \
				  VM_IO | VM_DONTEXPAND | VM_MIXEDMAP | \
				  VM_HUGETLB)

/* Pages looked up per mmap lock hold. */
#define MERGEMEM_BATCH 128

struct mergemem_batch {
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

/*
 * A reference on @page's folio, or NULL when the page is being freed or is
 * not one to read (device memory). The caller checks afterwards that its
 * entry still maps the page: it may have been freed and reused meanwhile.
 */
static struct page *grab_page(struct page *page)
{
	struct folio *folio = page_folio(page);

	if (!folio_try_get(folio))
		return NULL;
	if (unlikely(page_folio(page) != folio) || is_zone_device_page(page)) {
		folio_put(folio);
		return NULL;
	}
	return page;
}

/*
 * The page mapped at @addr, with a reference, or NULL when none is present
 * (or it is the zero page: then *@zero is set). Interrupts stay off for the
 * walk, which keeps the page tables from being freed under it (their
 * freeing waits for an IPI or an RCU grace period, as for GUP-fast); each
 * level is read once, and the entry that maps the page is read again once
 * the reference is held. Nothing here sets an accessed bit or
 * PG_referenced.
 */
static struct page *peek_page(struct mm_struct *mm, unsigned long addr,
			      bool *zero)
{
	struct page *page = NULL;
	unsigned long irqflags;
	pgd_t *pgdp, pgd;
	p4d_t *p4dp, p4d;
	pud_t *pudp, pud;
	pmd_t *pmdp, pmd;
	pte_t *ptep, pte;

	*zero = false;
	local_irq_save(irqflags);
	pgdp = pgd_offset(mm, addr);
	pgd = READ_ONCE(*pgdp);
	if (pgd_none(pgd) || pgd_bad(pgd))
		goto out;
	p4dp = p4d_offset(&pgd, addr);
	p4d = READ_ONCE(*p4dp);
	if (p4d_none(p4d) || p4d_bad(p4d))
		goto out;
	pudp = pud_offset(&p4d, addr);
	pud = READ_ONCE(*pudp);
	if (pud_none(pud) || !pud_present(pud) || pud_leaf(pud) ||
	    pud_bad(pud))
		goto out;
	pmdp = pmd_offset(&pud, addr);
	pmd = READ_ONCE(*pmdp);
	if (pmd_none(pmd) || !pmd_present(pmd) || pmd_protnone(pmd))
		goto out;
	if (pmd_leaf(pmd)) {
		page = grab_page(pmd_page(pmd) +
				 ((addr & ~PMD_MASK) >> PAGE_SHIFT));
		if (page && pmd_val(pmd) != pmd_val(READ_ONCE(*pmdp)))
			goto drop;
		goto out;
	}
	if (pmd_bad(pmd))
		goto out;
	ptep = pte_offset_kernel(&pmd, addr);
	pte = ptep_get_lockless(ptep);
	if (!pte_present(pte) || pte_protnone(pte))
		goto out;
	if (pte_special(pte)) {
		*zero = is_zero_pfn(pte_pfn(pte));
		goto out;
	}
	page = grab_page(pte_page(pte));
	if (page && (pmd_val(pmd) != pmd_val(READ_ONCE(*pmdp)) ||
		     pte_val(pte) != pte_val(ptep_get_lockless(ptep))))
		goto drop;
out:
	local_irq_restore(irqflags);
	return page;
drop:
	local_irq_restore(irqflags);
	put_page(page);
	return NULL;
}

static void describe_zero_page(struct mergemem_pageinfo *pi)
{
	pi->hash = zero_page_hash;
	pi->flags = MERGEMEM_PI_PRESENT | MERGEMEM_PI_HASHED |
		    MERGEMEM_PI_ZERO_PAGE | MERGEMEM_PI_ZEROFILLED;
}

static void describe_page(struct page *page, struct mergemem_pageinfo *pi)
{
	struct folio *folio = page_folio(page);
	u32 flags = MERGEMEM_PI_PRESENT | MERGEMEM_PI_HASHED;
	void *kaddr;

	if (is_zero_pfn(page_to_pfn(page))) {
		describe_zero_page(pi);
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
 * read lock, which keeps the VMAs as they are. Holes between VMAs, and
 * VMAs whose pages are never read, are skipped at once.
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

		if (!vma)
			break;
		if (vma->vm_start > a) {
			i += min(n - i, (vma->vm_start - a) >> PAGE_SHIFT);
			continue;
		}
		chunk = min(n - i, (vma->vm_end - a) >> PAGE_SHIFT);
		if (vma->vm_flags & MERGEMEM_UNREAD_VM_FLAGS ||
		    !(vma->vm_flags & VM_READ)) {
			i += chunk;
			continue;
		}
		for (j = 0; j < chunk; j++, a += PAGE_SIZE) {
			struct page *page;
			bool zero;

			page = peek_page(mm, a, &zero);
			if (page) {
				describe_page(page, &b->info[i + j]);
				put_page(page);
			} else if (zero) {
				describe_zero_page(&b->info[i + j]);
			}
		}
		i += chunk;
		if (fatal_signal_pending(current))
			return -EINTR;
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
