/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _MERGEMEM_THP_H
#define _MERGEMEM_THP_H

#include <linux/compiler_types.h>

struct mergemem_thp_args;

long mergemem_ioctl_thp(struct mergemem_thp_args __user *uargs);

#endif /* _MERGEMEM_THP_H */
