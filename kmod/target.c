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
#include <linux/magic.h>
#include <linux/sched.h>
#include <linux/sched/mm.h>
#include <linux/uaccess.h>

#include "compat.h"
#include "target.h"

/* The f_op of every /proc/PID/mem file, learnt once at load. */
static const struct file_operations *proc_mem_fops;

/*
 * /proc/self/mem is resolved in the loading process's mount namespace, which
 * need not have procfs there: the file must be on procfs and hold the
 * loader's own mm, as only procfs's mem file of the loader does.
 */
int mergemem_target_init(void)
{
	struct file *file;
	int err = 0;

	file = filp_open("/proc/self/mem", O_RDONLY, 0);
	if (IS_ERR(file))
		return PTR_ERR(file);
	if (file_inode(file)->i_sb->s_magic != PROC_SUPER_MAGIC ||
	    file->private_data != current->mm || !file->f_op)
		err = -ENODEV;
	else
		proc_mem_fops = file->f_op;
	filp_close(file, NULL);
	return err;
}

/**
 * mergemem_target_get - the address space behind a /proc/PID/mem fd
 * @mem_fd: the caller's file descriptor
 * @mode: FMODE_READ and/or FMODE_WRITE, the access the fd must have been
 *	opened with (as read(2) and write(2) of /proc/PID/mem require)
 *
 * Return: the target's mm with a reference taken by mmget(), to be released
 * with mmput(); ERR_PTR(-EBADF) if @mem_fd is not open or not open for
 * @mode, ERR_PTR(-EBADFD) if it is not a /proc/PID/mem file,
 * ERR_PTR(-ESRCH) if the address space is gone.
 */
struct mm_struct *mergemem_target_get(int mem_fd, fmode_t mode)
{
	struct mm_struct *mm;
	struct file *file;
	struct fd f;

	if (mem_fd < 0)
		return ERR_PTR(-EBADF);
	f = fdget(mem_fd);
	file = mergemem_fd_file(f);
	if (!file)
		return ERR_PTR(-EBADF);
	if (file->f_op != proc_mem_fops) {
		mm = ERR_PTR(-EBADFD);
	} else if ((file->f_mode & mode) != mode) {
		mm = ERR_PTR(-EBADF);
	} else {
		/* NULL for a task without an mm, such as a kernel thread. */
		mm = file->private_data;
		if (!mm || !mmget_not_zero(mm))
			mm = ERR_PTR(-ESRCH);
	}
	fdput(f);
	return mm;
}

/**
 * mergemem_user_range_ok - whether [@start, @end) can be user addresses
 * @start: the first address, from a u64 ioctl field
 * @end: the end (exclusive); the caller has checked @start < @end
 *
 * Rejects ranges that reach beyond TASK_SIZE_MAX, which also rejects on
 * 32-bit kernels any value that would be truncated to an unsigned long.
 */
bool mergemem_user_range_ok(u64 start, u64 end)
{
	return start < end && end <= TASK_SIZE_MAX;
}
