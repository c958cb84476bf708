/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _MERGEMEM_TARGET_H
#define _MERGEMEM_TARGET_H

struct mm_struct;

int mergemem_target_init(void);
struct mm_struct *mergemem_target_get(int mem_fd);

#endif /* _MERGEMEM_TARGET_H */
