/* Test tooling for strata-vercmp (not part of the crate): built against
 * apk-tools' sources by apk-oracle.sh to record apk-oracle.txt. */
/* Labels version pairs with apk-tools' own apk_version_validate and
 * apk_version_compare. Input lines: HEXA,HEXB. Output lines: VA VB C with
 * C one of < = > x (x: a side is invalid). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "apk_version.h"

/* blob.c refers to it for digests, which versions never use. */
int apk_digest_alg_len(unsigned char alg) { (void)alg; return 0; }

static size_t unhex(const char *h, size_t n, char *out)
{
	for (size_t i = 0; 2 * i + 1 < n; i++) {
		unsigned int v;
		sscanf(h + 2 * i, "%2x", &v);
		out[i] = (char)v;
	}
	return n / 2;
}

int main(int argc, char **argv)
{
	static char line[1 << 16], a[1 << 15], b[1 << 15];
	FILE *f = fopen(argv[1], "r");
	if (!f) return 2;
	while (fgets(line, sizeof line, f)) {
		size_t n = strcspn(line, "\r\n");
		line[n] = 0;
		char *comma = strchr(line, ',');
		if (!comma) return 3;
		size_t la = unhex(line, comma - line, a);
		size_t lb = unhex(comma + 1, strlen(comma + 1), b);
		apk_blob_t ba = APK_BLOB_PTR_LEN(a, la), bb = APK_BLOB_PTR_LEN(b, lb);
		int va = apk_version_validate(ba), vb = apk_version_validate(bb);
		char c = 'x';
		if (va && vb) {
			int r = apk_version_compare(ba, bb);
			c = r == APK_VERSION_LESS ? '<' : r == APK_VERSION_EQUAL ? '=' : r == APK_VERSION_GREATER ? '>' : '?';
		}
		printf("%d%d%c\n", va ? 1 : 0, vb ? 1 : 0, c);
	}
	return 0;
}
