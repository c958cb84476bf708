// SPDX-License-Identifier: GPL-2.0
/*
 * Print every constant and struct layout of the /dev/mergemem uapi header as
 * JSON lines, for the TypeScript client's ABI test to compare against.
 *
 * Build: gcc -Wall -Wextra -I kmod/include/uapi -o print_abi tests/abi/print_abi.c
 */
#include <stddef.h>
#include <stdio.h>
#include <linux/mergemem.h>

#define CONST(c) \
	printf("{\"name\":\"%s\",\"value\":\"0x%llx\"}\n", #c, \
	       (unsigned long long)(c))

#define FIELD(s, f) \
	printf("%s\"%s\":%zu", first++ ? "," : "", #f, offsetof(struct s, f))

#define STRUCT_BEGIN(s) \
	do { \
		int first = 0; \
		printf("{\"struct\":\"%s\",\"size\":%zu,\"fields\":{", #s, \
		       sizeof(struct s))
#define STRUCT_END() \
		printf("}}\n"); \
	} while (0)

int main(void)
{
	CONST(MERGEMEM_API);
	CONST(MERGEMEM_IOC_MAGIC);
	CONST(MERGEMEM_FEATURE_PAGEINFO);
	CONST(MERGEMEM_FEATURE_MERGE);
	CONST(MERGEMEM_FEATURE_UNMERGE);
	CONST(MERGEMEM_FEATURE_PAGEINFO_UNTOUCHED);
	CONST(MERGEMEM_FEATURE_THP);
	CONST(MERGEMEM_THP_NOHUGEPAGE);
	CONST(MERGEMEM_THP_RESTORE);
	CONST(MERGEMEM_THP_HUGEPAGE);
	CONST(MERGEMEM_PI_PRESENT);
	CONST(MERGEMEM_PI_ZERO_PAGE);
	CONST(MERGEMEM_PI_KSM);
	CONST(MERGEMEM_PI_ANON);
	CONST(MERGEMEM_PI_THP);
	CONST(MERGEMEM_PI_ZEROFILLED);
	CONST(MERGEMEM_PI_HASHED);
	CONST(MERGEMEM_PAGEINFO_MAX);
	CONST(MERGEMEM_IOC_API);
	CONST(MERGEMEM_IOC_PAGEINFO);
	CONST(MERGEMEM_IOC_MERGE);
	CONST(MERGEMEM_IOC_UNMERGE);
	CONST(MERGEMEM_IOC_THP);

	STRUCT_BEGIN(mergemem_api);
	FIELD(mergemem_api, api);
	FIELD(mergemem_api, features);
	FIELD(mergemem_api, ioctls);
	FIELD(mergemem_api, module_version);
	FIELD(mergemem_api, reserved);
	STRUCT_END();

	STRUCT_BEGIN(mergemem_pageinfo);
	FIELD(mergemem_pageinfo, hash);
	FIELD(mergemem_pageinfo, flags);
	FIELD(mergemem_pageinfo, reserved);
	STRUCT_END();

	STRUCT_BEGIN(mergemem_pageinfo_args);
	FIELD(mergemem_pageinfo_args, mem_fd);
	FIELD(mergemem_pageinfo_args, flags);
	FIELD(mergemem_pageinfo_args, start);
	FIELD(mergemem_pageinfo_args, npages);
	FIELD(mergemem_pageinfo_args, out);
	FIELD(mergemem_pageinfo_args, done);
	STRUCT_END();

	STRUCT_BEGIN(mergemem_range_args);
	FIELD(mergemem_range_args, mem_fd);
	FIELD(mergemem_range_args, flags);
	FIELD(mergemem_range_args, start);
	FIELD(mergemem_range_args, end);
	FIELD(mergemem_range_args, vmas_changed);
	FIELD(mergemem_range_args, bytes_changed);
	FIELD(mergemem_range_args, vmas_unchanged);
	FIELD(mergemem_range_args, vmas_skipped);
	STRUCT_END();

	STRUCT_BEGIN(mergemem_thp_args);
	FIELD(mergemem_thp_args, mem_fd);
	FIELD(mergemem_thp_args, flags);
	FIELD(mergemem_thp_args, start);
	FIELD(mergemem_thp_args, end);
	FIELD(mergemem_thp_args, vmas_changed);
	FIELD(mergemem_thp_args, vmas_hugepage);
	FIELD(mergemem_thp_args, vmas_unchanged);
	FIELD(mergemem_thp_args, vmas_skipped);
	STRUCT_END();
	return 0;
}
