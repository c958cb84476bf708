// SPDX-License-Identifier: GPL-2.0
/* Feature probe: get_user_pages_remote() takes a vmas argument (< 6.5). */
#include <linux/mm.h>

long mergemem_probe(struct mm_struct *mm, struct page **pages);
long mergemem_probe(struct mm_struct *mm, struct page **pages)
{
	return get_user_pages_remote(mm, 0, 1, FOLL_NOFAULT, pages, NULL, NULL);
}
