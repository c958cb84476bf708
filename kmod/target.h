/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _MERGEMEM_TARGET_H
#define _MERGEMEM_TARGET_H

#include <linux/types.h>

struct mm_struct;

int mergemem_target_init(void);
struct mm_struct *mergemem_target_get(int mem_fd, fmode_t mode);
bool mergemem_user_range_ok(u64 start, u64 end);

#endif /* _MERGEMEM_TARGET_H */
