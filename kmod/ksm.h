/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _MERGEMEM_KSM_H
#define _MERGEMEM_KSM_H

#include <linux/compiler_types.h>
#include <linux/types.h>

struct mergemem_range_args;

long mergemem_ioctl_range(struct mergemem_range_args __user *uargs,
			  bool merge);

#endif /* _MERGEMEM_KSM_H */
