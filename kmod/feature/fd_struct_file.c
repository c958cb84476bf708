// SPDX-License-Identifier: GPL-2.0
/* Feature probe: struct fd has a file member (the legacy, < 6.12 way). */
#include <linux/file.h>

struct file *mergemem_probe(unsigned int fd);
struct file *mergemem_probe(unsigned int fd)
{
	struct fd f = fdget(fd);
	struct file *file = f.file;

	fdput(f);
	return file;
}
