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

/* One block of a parallel gzip stream (see src/pgzip.rs) as raw deflate at
 * igzip level 1-3: primed with `dict`, ended by a sync flush (byte aligned),
 * or ending the stream when `last`. Returns 0 with *out_len set, 1 when
 * out_cap was too small (the caller retries with more), or igzip's error. */
int strata_isal_deflate_block(int level, const uint8_t *dict, uint32_t dict_len, const uint8_t *in,
			      uint32_t in_len, int last, uint8_t *out, uint32_t out_cap, uint32_t *out_len) {
	struct isal_zstream s;
	isal_deflate_init(&s);
	uint32_t lb_size = level == 1 ? ISAL_DEF_LVL1_DEFAULT : level == 2 ? ISAL_DEF_LVL2_DEFAULT : ISAL_DEF_LVL3_DEFAULT;
	uint8_t *lb = malloc(lb_size);
	if (!lb)
		return -100;
	s.level = level;
	s.level_buf = lb;
	s.level_buf_size = lb_size;
	s.gzip_flag = IGZIP_DEFLATE;
	if (dict_len) {
		int r = isal_deflate_set_dict(&s, (uint8_t *)dict, dict_len);
		if (r != COMP_OK) {
			free(lb);
			return r;
		}
	}
	s.next_in = (uint8_t *)in;
	s.avail_in = in_len;
	s.end_of_stream = last ? 1 : 0;
	s.flush = last ? NO_FLUSH : SYNC_FLUSH;
	s.next_out = out;
	s.avail_out = out_cap;
	int r = isal_deflate(&s);
	int state = s.internal_state.state;
	free(lb);
	if (r != COMP_OK)
		return r;
	/* Complete: all input taken and room left (a sync flush done), or the end written. */
	if (s.avail_in != 0 || s.avail_out == 0 || (last && state != ZSTATE_END))
		return 1;
	*out_len = out_cap - s.avail_out;
	return 0;
}
