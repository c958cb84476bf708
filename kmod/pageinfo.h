/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _MERGEMEM_PAGEINFO_H
#define _MERGEMEM_PAGEINFO_H

#include <linux/compiler_types.h>

struct mergemem_pageinfo_args;

int mergemem_pageinfo_init(void);
long mergemem_ioctl_pageinfo(struct mergemem_pageinfo_args __user *uargs);

#endif /* _MERGEMEM_PAGEINFO_H */
