#define _GNU_SOURCE
#include "work_dir.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

void work_dir_remove(const char *dir)
{
	DIR *d = opendir(dir);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			if (unlinkat(dirfd(d), e->d_name, 0) < 0 && errno == EISDIR) {
				char sub[PATH_MAX];
				snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name);
				work_dir_remove(sub);
			}
		}
		closedir(d);
	}
	rmdir(dir);
}
