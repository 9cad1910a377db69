/* A small shim over ISA-L's igzip inflate for strata-layer (src/igzip.rs):
 * the inflate state stays opaque to Rust (its layout is the library's). */
#include <stdint.h>
#include <stdlib.h>
#include <isa-l/igzip_lib.h>

void *strata_isal_inflate_new(void) {
	struct inflate_state *s = malloc(sizeof *s);
	if (!s)
		return NULL;
	isal_inflate_init(s);
	s->crc_flag = ISAL_GZIP; /* parse the gzip header, verify CRC-32 and size */
	return s;
}

void strata_isal_inflate_reset(void *p) {
	struct inflate_state *s = p;
	isal_inflate_reset(s);
	s->crc_flag = ISAL_GZIP;
}

void strata_isal_inflate_free(void *p) {
	free(p);
}

/* One call of isal_inflate over in[..in_len] into out[..out_len]: what it
 * consumed and produced, and whether the gzip member ended (trailer checked). */
int strata_isal_inflate(void *p, const uint8_t *in, uint32_t in_len, uint32_t *consumed,
			uint8_t *out, uint32_t out_len, uint32_t *produced, int *finished) {
	struct inflate_state *s = p;
	s->next_in = (uint8_t *)in;
	s->avail_in = in_len;
	s->next_out = out;
	s->avail_out = out_len;
	int r = isal_inflate(s);
	*consumed = in_len - s->avail_in;
	*produced = out_len - s->avail_out;
	*finished = s->block_state == ISAL_BLOCK_FINISH;
	return r;
}
