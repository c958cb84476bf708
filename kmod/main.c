// SPDX-License-Identifier: GPL-2.0
/*
 * mergemem: hash another process's pages in place and hand its memory to
 * KSM, the kernel's same-page merging engine.
 *
 * The user-space ABI, including the security model, is described in
 * include/uapi/linux/mergemem.h.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/bits.h>
#include <linux/compat.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/mergemem.h>

#include "ksm.h"
#include "pageinfo.h"
#include "target.h"
#include "thp.h"

/* MERGEMEM_VERSION and MERGEMEM_VERSION_CODE come from dkms.conf (Kbuild). */

/* Without CONFIG_KSM, ksm_madvise() is a stub: MERGE would do nothing. */
#define MERGEMEM_HAVE_KSM IS_ENABLED(CONFIG_KSM)

/* Without CONFIG_TRANSPARENT_HUGEPAGE there is nothing for THP to undo. */
#define MERGEMEM_HAVE_THP IS_ENABLED(CONFIG_TRANSPARENT_HUGEPAGE)

#define MERGEMEM_FEATURES (MERGEMEM_FEATURE_PAGEINFO | \
			   MERGEMEM_FEATURE_PAGEINFO_UNTOUCHED | \
			   (MERGEMEM_HAVE_KSM ? MERGEMEM_FEATURE_MERGE | \
			    MERGEMEM_FEATURE_UNMERGE : 0) | \
			   (MERGEMEM_HAVE_THP ? MERGEMEM_FEATURE_THP : 0))

#define MERGEMEM_IOCTLS (BIT_ULL(_IOC_NR(MERGEMEM_IOC_API)) | \
			 BIT_ULL(_IOC_NR(MERGEMEM_IOC_PAGEINFO)) | \
			 (MERGEMEM_HAVE_KSM ? \
			  BIT_ULL(_IOC_NR(MERGEMEM_IOC_MERGE)) | \
			  BIT_ULL(_IOC_NR(MERGEMEM_IOC_UNMERGE)) : 0) | \
			 (MERGEMEM_HAVE_THP ? \
			  BIT_ULL(_IOC_NR(MERGEMEM_IOC_THP)) : 0))

/* Per open file. */
struct mergemem_file {
	bool handshake_done;
};

static long mergemem_ioctl_api(struct mergemem_file *mf,
			       struct mergemem_api __user *uapi)
{
	struct mergemem_api api;
	long err = 0;

	if (copy_from_user(&api, uapi, sizeof(api)))
		return -EFAULT;
	if (api.api != MERGEMEM_API || api.reserved ||
	    api.features & ~MERGEMEM_FEATURES)
		err = -EINVAL;

	/* The module's answer is written back on failure too. */
	api.api = MERGEMEM_API;
	api.features = MERGEMEM_FEATURES;
	api.ioctls = MERGEMEM_IOCTLS;
	api.module_version = MERGEMEM_VERSION_CODE;
	api.reserved = 0;
	if (copy_to_user(uapi, &api, sizeof(api)))
		return -EFAULT;
	if (!err)
		WRITE_ONCE(mf->handshake_done, true);
	return err;
}

static long mergemem_ioctl(struct file *file, unsigned int cmd,
			   unsigned long arg)
{
	struct mergemem_file *mf = file->private_data;
	void __user *argp = (void __user *)arg;

	switch (cmd) {
	case MERGEMEM_IOC_API:
		return mergemem_ioctl_api(mf, argp);
	case MERGEMEM_IOC_PAGEINFO:
		break;
	case MERGEMEM_IOC_MERGE:
	case MERGEMEM_IOC_UNMERGE:
		if (MERGEMEM_HAVE_KSM)
			break;
		return -ENOTTY;
	case MERGEMEM_IOC_THP:
		if (MERGEMEM_HAVE_THP)
			break;
		fallthrough;
	default:
		return -ENOTTY;
	}

	if (!READ_ONCE(mf->handshake_done))
		return -EINVAL;

	switch (cmd) {
	case MERGEMEM_IOC_PAGEINFO:
		return mergemem_ioctl_pageinfo(argp);
	case MERGEMEM_IOC_MERGE:
		return mergemem_ioctl_range(argp, true);
	case MERGEMEM_IOC_THP:
		return mergemem_ioctl_thp(argp);
	default:
		return mergemem_ioctl_range(argp, false);
	}
}

static int mergemem_open(struct inode *inode, struct file *file)
{
	struct mergemem_file *mf;

	mf = kzalloc(sizeof(*mf), GFP_KERNEL);
	if (!mf)
		return -ENOMEM;
	file->private_data = mf;
	return nonseekable_open(inode, file);
}

static int mergemem_release(struct inode *inode, struct file *file)
{
	kfree(file->private_data);
	return 0;
}

static const struct file_operations mergemem_fops = {
	.owner = THIS_MODULE,
	.open = mergemem_open,
	.release = mergemem_release,
	.unlocked_ioctl = mergemem_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
};

static struct miscdevice mergemem_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "mergemem",
	.fops = &mergemem_fops,
	.mode = 0666,
};

static int __init mergemem_init(void)
{
	int err;

	err = mergemem_target_init();
	if (err == -ENODEV) {
		pr_err("/proc/self/mem is not procfs's mem file of the loading process\n");
		return err;
	}
	if (err) {
		pr_err("cannot open /proc/self/mem: %d\n", err);
		return err;
	}
	err = mergemem_pageinfo_init();
	if (err)
		return err;
	return misc_register(&mergemem_misc);
}

static void __exit mergemem_exit(void)
{
	misc_deregister(&mergemem_misc);
}

module_init(mergemem_init);
module_exit(mergemem_exit);

MODULE_LICENSE("GPL");
MODULE_VERSION(MERGEMEM_VERSION);
MODULE_AUTHOR("The mergemem authors");
MODULE_DESCRIPTION("Hash other processes' pages and register them with KSM");
