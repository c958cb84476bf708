// SPDX-License-Identifier: GPL-2.0
/*
 * Turning a /proc/PID/mem file descriptor into the target's address space.
 *
 * Opening /proc/PID/mem is where the kernel checks ptrace-attach rights
 * (mm_access() with PTRACE_MODE_ATTACH_FSCREDS, security modules included)
 * and it leaves the target's mm_struct, mmgrab()bed, in the file's
 * private_data. Holding such an fd therefore is the permission; this file
 * only verifies that an fd really is one.
 */
#include <linux/err.h>
#include <linux/fcntl.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/sched/mm.h>

#include "target.h"

/* The f_op of every /proc/PID/mem file, learnt once at load. */
static const struct file_operations *proc_mem_fops;

int mergemem_target_init(void)
{
	struct file *file;

	file = filp_open("/proc/self/mem", O_RDONLY, 0);
	if (IS_ERR(file))
		return PTR_ERR(file);
	proc_mem_fops = file->f_op;
	filp_close(file, NULL);
	return proc_mem_fops ? 0 : -ENODEV;
}

/**
 * mergemem_target_get - the address space behind a /proc/PID/mem fd
 * @mem_fd: the caller's file descriptor
 *
 * Return: the target's mm with a reference taken by mmget(), to be released
 * with mmput(); ERR_PTR(-EBADF) if @mem_fd is not open, ERR_PTR(-EBADFD) if
 * it is not a /proc/PID/mem file, ERR_PTR(-ESRCH) if the address space is
 * gone.
 */
struct mm_struct *mergemem_target_get(int mem_fd)
{
	struct mm_struct *mm;
	struct file *file;

	if (mem_fd < 0)
		return ERR_PTR(-EBADF);
	file = fget(mem_fd);
	if (!file)
		return ERR_PTR(-EBADF);
	if (file->f_op != proc_mem_fops) {
		fput(file);
		return ERR_PTR(-EBADFD);
	}
	/* NULL for a task without an mm, such as a kernel thread. */
	mm = file->private_data;
	if (!mm || !mmget_not_zero(mm))
		mm = ERR_PTR(-ESRCH);
	fput(file);
	return mm;
}
