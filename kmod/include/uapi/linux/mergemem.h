/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * mergemem: the /dev/mergemem user-space ABI.
 *
 * /dev/mergemem lets a program hash the pages of another process in place
 * and register that process's memory with KSM, the kernel's same-page
 * merging engine, which then merges identical pages copy-on-write.
 *
 * Security model
 * --------------
 * The device is world-usable (mode 0666). Every call that touches a target
 * process names it by @mem_fd, an open file descriptor of /proc/PID/mem.
 * Opening that file is where the kernel checks ptrace-attach rights
 * (PTRACE_MODE_ATTACH_FSCREDS, security modules included), so holding such
 * an fd *is* the permission. The module only verifies that @mem_fd really is
 * a /proc/PID/mem file; it has no permission logic of its own. This is the
 * 1999 mergemem's "same security as ptrace(2) and /proc/PID/mem".
 *
 * The fd's open mode counts as for read(2) and write(2) of that file:
 * PAGEINFO reads the target's memory and needs an fd opened for reading
 * (O_RDONLY or O_RDWR); MERGE and UNMERGE change the target's mappings and
 * need an fd opened for writing (O_RDWR, or O_WRONLY). Otherwise EBADF.
 *
 * Handshake
 * ---------
 * After open(2), the first ioctl must be MERGEMEM_IOC_API, in the manner of
 * UFFDIO_API: the caller sends the API version it speaks and the feature
 * bits it needs; the module answers with its own version, every feature it
 * supports and the ioctls it implements. Any other ioctl before a successful
 * handshake fails with EINVAL. New features only ever add bits, so an old
 * tool keeps working with a newer module.
 *
 * Common errors (every ioctl)
 * ---------------------------
 *   ENOTTY   unknown ioctl command number
 *   EFAULT   the argument pointer, or a pointer inside it, is bad
 *   EINVAL   handshake missing, a reserved field or flag is non-zero, or a
 *            range is unaligned, empty, wraps around or reaches beyond
 *            the largest user address (TASK_SIZE_MAX)
 *   EBADF    @mem_fd is not an open file descriptor, or is not open for
 *            what the call needs (see Security model)
 *   EBADFD   @mem_fd is open but is not a /proc/PID/mem file
 *   ESRCH    the target's address space is gone (the process exited or
 *            exec'd after @mem_fd was opened)
 *   EINTR    a fatal signal arrived while waiting for the target's mmap lock
 */
#ifndef _UAPI_LINUX_MERGEMEM_H
#define _UAPI_LINUX_MERGEMEM_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* The API version this header describes. */
#define MERGEMEM_API			1

/* The ioctl type byte (see Documentation/userspace-api/ioctl). */
#define MERGEMEM_IOC_MAGIC		0xE7

/* Feature bits, negotiated by MERGEMEM_IOC_API. */
/*
 * MERGE and UNMERGE are offered only by a kernel built with CONFIG_KSM;
 * without it their ioctls fail with ENOTTY.
 */
#define MERGEMEM_FEATURE_PAGEINFO	0x1ULL	/* PAGEINFO, xxh64 */
#define MERGEMEM_FEATURE_MERGE		0x2ULL	/* MERGE */
#define MERGEMEM_FEATURE_UNMERGE	0x4ULL	/* UNMERGE */
/* PAGEINFO marks no page accessed: a scan leaves page aging as it was. */
#define MERGEMEM_FEATURE_PAGEINFO_UNTOUCHED 0x8ULL
/* THP (only with CONFIG_TRANSPARENT_HUGEPAGE; else ENOTTY). */
#define MERGEMEM_FEATURE_THP		0x10ULL

/**
 * struct mergemem_api - MERGEMEM_IOC_API argument
 * @api: in: the API version the caller speaks (must be MERGEMEM_API);
 *	out: the module's API version.
 * @features: in: the features the caller requires; out: every feature the
 *	module supports. If a required feature is missing the call fails with
 *	EINVAL and still writes back the supported set.
 * @ioctls: out: bit N is set when the ioctl with _IOC_NR N is supported.
 * @module_version: out: the module's version, (major << 16) | (minor << 8)
 *	| patch.
 * @reserved: must be zero.
 *
 * Errors: EINVAL if @api is not MERGEMEM_API (@api is then written back
 * with the module's version), if @reserved is non-zero, or if @features
 * asks for something unsupported.
 */
struct mergemem_api {
	__u64 api;
	__u64 features;
	__u64 ioctls;
	__u32 module_version;
	__u32 reserved;
};

/* Flags of struct mergemem_pageinfo. */
#define MERGEMEM_PI_PRESENT	0x01U /* mapped to a page in RAM */
#define MERGEMEM_PI_ZERO_PAGE	0x02U /* mapped to the shared zero page */
					/* (also KSM's merged zero pages) */
#define MERGEMEM_PI_KSM		0x04U /* a KSM (already merged) page */
#define MERGEMEM_PI_ANON	0x08U /* an anonymous page */
#define MERGEMEM_PI_THP		0x10U /* part of a transparent huge page */
#define MERGEMEM_PI_ZEROFILLED	0x20U /* present, content all zero */
#define MERGEMEM_PI_HASHED	0x40U /* @hash is valid */

/**
 * struct mergemem_pageinfo - one page's description, filled by PAGEINFO
 * @hash: xxh64 (seed 0) of the page's PAGE_SIZE bytes when
 *	MERGEMEM_PI_HASHED is set, else 0.
 * @flags: MERGEMEM_PI_* bits. 0 for an unmapped address or a page that is
 *	not in RAM (never touched, swapped out, or migrating), and for
 *	every page of a mapping KSM cannot merge (shared, VM_IO, VM_PFNMAP,
 *	VM_MIXEDMAP, VM_DONTEXPAND, hugetlb) or cannot be read (no read
 *	permission), which is never read. A page that KSM merged with the zero page
 *	(use_zero_pages=1) is the shared zero page and reports
 *	MERGEMEM_PI_ZERO_PAGE, not MERGEMEM_PI_KSM.
 * @reserved: written as 0.
 */
struct mergemem_pageinfo {
	__u64 hash;
	__u32 flags;
	__u32 reserved;
};

/* The most pages a single PAGEINFO call may describe. */
#define MERGEMEM_PAGEINFO_MAX	65536

/**
 * struct mergemem_pageinfo_args - MERGEMEM_IOC_PAGEINFO argument
 * @mem_fd: an fd of the target's /proc/PID/mem.
 * @flags: must be zero.
 * @start: the first virtual address, page aligned.
 * @npages: how many pages, 1 to MERGEMEM_PAGEINFO_MAX.
 * @out: user pointer to an array of @npages struct mergemem_pageinfo.
 * @done: out: how many entries of @out were written.
 *
 * Describes the pages of [@start, @start + @npages * PAGE_SIZE) in the
 * target. The pages are found in the target's page tables as they are and
 * never pinned: the call never faults a page in, swaps it in, allocates it
 * or unshares it, so it does not undo KSM merges. With
 * MERGEMEM_FEATURE_PAGEINFO_UNTOUCHED it also marks nothing accessed (no
 * page table entry made young, no PG_referenced set, transparent huge pages
 * included), so scans do not make the target's memory look recently used
 * to reclaim; modules without the feature looked pages up with
 * get_user_pages_remote(), which does. Unmapped addresses report flags 0.
 *
 * Errors: E2BIG if @npages > MERGEMEM_PAGEINFO_MAX; EINVAL if @npages is 0,
 * @start is unaligned, or the range wraps or reaches beyond TASK_SIZE_MAX;
 * EBADF if @mem_fd is not open for reading; EFAULT if @out is not writable
 * (@done then tells how many entries were written).
 */
struct mergemem_pageinfo_args {
	__s32 mem_fd;
	__u32 flags;
	__u64 start;
	__u64 npages;
	__u64 out;
	__u64 done;
};

/**
 * struct mergemem_range_args - MERGEMEM_IOC_MERGE/UNMERGE argument
 * @mem_fd: an fd of the target's /proc/PID/mem.
 * @flags: must be zero.
 * @start: the start of the range, page aligned.
 * @end: the end of the range (exclusive), page aligned, > @start.
 * @vmas_changed: out: VMAs newly marked (MERGE) or unmarked (UNMERGE).
 * @bytes_changed: out: the total size of those VMAs.
 * @vmas_unchanged: out: VMAs that already were in the requested state.
 * @vmas_skipped: out: VMAs KSM cannot handle (shared, VM_IO, VM_PFNMAP,
 *	hugetlb, DAX, ...), left untouched.
 *
 * Only whole VMAs can be (un)marked: every VMA that intersects
 * [@start, @end) is changed in full.
 *
 * MERGE marks the VMAs as MADV_MERGEABLE does; ksmd merges them
 * asynchronously. UNMERGE is MADV_UNMERGEABLE: it breaks every existing
 * merge in those VMAs, which allocates memory and may fail with ENOMEM.
 * Unlike madvise(), UNMERGE never holds the target's mmap lock for long: it
 * unmarks each VMA in one short step (ksmd then merges nothing more in
 * it), then unshares its merged pages a few MiB per hold of the lock,
 * finding the VMA again by address each time. It stops with EINTR when a
 * signal arrives and with ESRCH when the target exits meanwhile; a VMA
 * interrupted by a signal (or ENOMEM) is marked again, as madvise() would
 * leave it, so a retry unmerges the rest. The out fields then count the
 * VMAs completed before the failure.
 *
 * Both need @mem_fd open for writing (EBADF otherwise).
 */
struct mergemem_range_args {
	__s32 mem_fd;
	__u32 flags;
	__u64 start;
	__u64 end;
	__u64 vmas_changed;
	__u64 bytes_changed;
	__u64 vmas_unchanged;
	__u64 vmas_skipped;
};

/* Operations of struct mergemem_thp_args (@flags). */
#define MERGEMEM_THP_NOHUGEPAGE	0x1U /* set VM_NOHUGEPAGE */
#define MERGEMEM_THP_RESTORE	0x2U /* clear VM_NOHUGEPAGE */
#define MERGEMEM_THP_HUGEPAGE	0x4U /* with RESTORE: set VM_HUGEPAGE */

/**
 * struct mergemem_thp_args - MERGEMEM_IOC_THP argument
 * @mem_fd: an fd of the target's /proc/PID/mem, open for writing.
 * @flags: MERGEMEM_THP_NOHUGEPAGE, or MERGEMEM_THP_RESTORE optionally with
 *	MERGEMEM_THP_HUGEPAGE.
 * @start: the start of the range, page aligned.
 * @end: the end of the range (exclusive), page aligned, > @start.
 * @vmas_changed: out: VMAs whose flags changed.
 * @vmas_hugepage: out: of those, VMAs that had VM_HUGEPAGE (their owner
 *	had asked for huge pages with MADV_HUGEPAGE) before the change.
 * @vmas_unchanged: out: VMAs that already were in the requested state.
 * @vmas_skipped: out: VMAs huge pages never apply to (hugetlb, VM_IO,
 *	VM_PFNMAP, VM_MIXEDMAP, VM_DONTEXPAND), left untouched.
 *
 * NOHUGEPAGE does to every VMA that intersects [@start, @end) what
 * madvise(MADV_NOHUGEPAGE) does: it sets VM_NOHUGEPAGE and clears
 * VM_HUGEPAGE, so that neither khugepaged nor a page fault puts a huge page
 * there. khugepaged treats pages KSM merged like any other, so without this
 * it collapses a merged range back into a private huge page and the saving
 * is lost. Huge pages already there stay until KSM splits them to merge.
 * RESTORE clears VM_NOHUGEPAGE, which madvise() cannot do (its only way
 * out of MADV_NOHUGEPAGE is MADV_HUGEPAGE), and with MERGEMEM_THP_HUGEPAGE
 * sets VM_HUGEPAGE again, for a VMA that had it. Only whole VMAs change.
 *
 * Errors: EINVAL for bad @flags or range; EBADF if @mem_fd is not open for
 * writing; EINTR, ESRCH as for MERGE.
 */
struct mergemem_thp_args {
	__s32 mem_fd;
	__u32 flags;
	__u64 start;
	__u64 end;
	__u64 vmas_changed;
	__u64 vmas_hugepage;
	__u64 vmas_unchanged;
	__u64 vmas_skipped;
};

#define MERGEMEM_IOC_API \
	_IOWR(MERGEMEM_IOC_MAGIC, 0x00, struct mergemem_api)
#define MERGEMEM_IOC_PAGEINFO \
	_IOWR(MERGEMEM_IOC_MAGIC, 0x01, struct mergemem_pageinfo_args)
#define MERGEMEM_IOC_MERGE \
	_IOWR(MERGEMEM_IOC_MAGIC, 0x02, struct mergemem_range_args)
#define MERGEMEM_IOC_UNMERGE \
	_IOWR(MERGEMEM_IOC_MAGIC, 0x03, struct mergemem_range_args)
#define MERGEMEM_IOC_THP \
	_IOWR(MERGEMEM_IOC_MAGIC, 0x04, struct mergemem_thp_args)

#endif /* _UAPI_LINUX_MERGEMEM_H */
