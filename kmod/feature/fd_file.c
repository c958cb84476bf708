// SPDX-License-Identifier: GPL-2.0
/* Feature probe: struct fd is read through fd_file() (6.12+). */
#include <linux/file.h>

struct file *mergemem_probe(unsigned int fd);
struct file *mergemem_probe(unsigned int fd)
{
	struct fd f = fdget(fd);
	struct file *file = fd_file(f);

	fdput(f);
	return file;
}
