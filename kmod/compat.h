/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Differences between the kernels mergemem builds against, selected by the
 * feature probes in feature/ whose results the Makefile writes to config.h.
 * Every choice needs a positive probe: when no probe confirms a way, the
 * build fails here rather than fall back to a guess.
 */
#ifndef _MERGEMEM_COMPAT_H
#define _MERGEMEM_COMPAT_H

#include "config.h"

#include <linux/file.h>
#include <linux/ksm.h>
#include <linux/mm.h>
#include <linux/sched/mm.h>

#ifndef MERGEMEM_HAVE_KSM_MADVISE_VM_FLAGS_T
#error "ksm_madvise() does not take a vm_flags_t *; see kmod/probes/"
#endif

/*
 * vm_flags: since 6.3 it is read-only and changed through vm_flags_*(); with
 * per-VMA locks (6.4+) the VMA must be write-locked first, or a concurrent
 * page fault under the VMA lock could see a half-done change. Before 6.3
 * the flags were written in place under the mmap write lock.
 */
#if defined(MERGEMEM_HAVE_VM_FLAGS_RESET)
#if defined(CONFIG_PER_VMA_LOCK) && !defined(MERGEMEM_HAVE_VMA_START_WRITE)
#error "CONFIG_PER_VMA_LOCK set, vma_start_write() probe failed; see kmod/probes/"
#endif
#elif !defined(MERGEMEM_HAVE_VM_FLAGS_WRITABLE)
#error "neither vm_flags_reset() nor a writable vma->vm_flags; see kmod/probes/"
#endif

/*
 * ksm_madvise() on [@start, @end) of @vma with the flags in @flags, which
 * it updates; the caller holds the mmap write lock and applies the result
 * with mergemem_vm_flags_reset(), or discards it.
 */
static inline void mergemem_vma_start_write(struct vm_area_struct *vma)
{
#ifdef MERGEMEM_HAVE_VMA_START_WRITE
	vma_start_write(vma);
#endif
}

static inline int mergemem_ksm_madvise(struct vm_area_struct *vma,
				       unsigned long start, unsigned long end,
				       int advice, vm_flags_t *flags)
{
	mergemem_vma_start_write(vma);
	return ksm_madvise(vma, start, end, advice, flags);
}

static inline void mergemem_vm_flags_reset(struct vm_area_struct *vma,
					   vm_flags_t flags)
{
#ifdef MERGEMEM_HAVE_VM_FLAGS_RESET
	vm_flags_reset(vma, flags);
#else
	vma->vm_flags = flags;
#endif
}

/* mm->flags became an opaque bitmap read through mm_flags_test() in 6.18. */
static inline bool mergemem_mm_flags_test(int flag, struct mm_struct *mm)
{
#if defined(MERGEMEM_HAVE_MM_FLAGS_TEST)
	return mm_flags_test(flag, mm);
#elif defined(MERGEMEM_HAVE_MM_FLAGS_ULONG)
	return test_bit(flag, &mm->flags);
#else
#error "neither mm_flags_test() nor an unsigned long mm->flags; see kmod/probes/"
#endif
}

/* struct fd is read through fd_file() since 6.12. */
#if defined(MERGEMEM_HAVE_FD_FILE)
#define mergemem_fd_file(f) fd_file(f)
#elif defined(MERGEMEM_HAVE_FD_STRUCT_FILE)
#define mergemem_fd_file(f) ((f).file)
#else
#error "neither fd_file() nor struct fd's file member; see kmod/probes/"
#endif

#endif /* _MERGEMEM_COMPAT_H */
