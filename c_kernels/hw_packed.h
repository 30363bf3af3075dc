/* hw_packed.h -- internal: the packed-weight handle (hw_pack_gemm_b /
 * hw_pack_conv2d_w / hw_packed_free).  Not read by cffi.
 *
 * One handle holds every format the fast paths may want for the accumulator
 * spec it was packed for, each part optional:
 *   vnni    the VPDPBUSD panels and column sums of hw_fast_x86_vnni.c, packed
 *           for every spec (an int32 accumulator, or a narrow one whose bound
 *           proves no step can saturate, takes that path).
 *   narrow  the panels of hw_fast_x86_narrow.c, packed only when the spec is a
 *           narrow saturating accumulator (acc_bits 8..31, saturate, group 1):
 *           w' = w - zw with the zero points given at pack time, its range and
 *           row sums, the step-kernel panels for that width and, for widths
 *           17..31 with w' in s8 and K % 4 == 0, the guarded path's weight
 *           quads, per-block sums and per-k maxima.
 * Every part records the shape (and the narrow part the zero points) it was
 * packed for; a call whose weights do not match a part ignores that part and
 * prepares its own copy, so packing never changes a result, only its cost.
 */
#ifndef HW_PACKED_H
#define HW_PACKED_H
#include <stddef.h>
#include "hw_types.h"

#define HW_PACKED_MAGIC 0x31444b4341504857ull /* "WHPACKD1" */

typedef struct {
    uint64_t magic;
    void *vnni;     /* hw_fast_x86_vnni.c's panels, or NULL */
    void *narrow;   /* hw_fast_x86_narrow.c's panels, or NULL */
} hw_packed_t;

/* The handle behind a packed_b / packed_w pointer, or NULL. */
static inline const hw_packed_t *hw_packed_handle(const void *h)
{
    const hw_packed_t *p = (const hw_packed_t *)h;
    return p != NULL && p->magic == HW_PACKED_MAGIC ? p : NULL;
}

/* hw_fast_x86_vnni.c: s8 / u8 weights [n, k] with row stride ldb; NULL when the
 * build / CPU has no such path, the dtype does not fit, or out of memory
 * (*nomem = 1 then). */
void *hw_vnni_pack(hw_dtype_t dt, const void *b, int64_t ldb, int64_t n, int64_t k, int *nomem);
void hw_vnni_pack_free(void *p);

/* hw_fast_x86_narrow.c: weights [n, k] (row stride ld, any operand dtype) with
 * zero points zp (NULL = 0; per_channel: n entries) for the narrow spec acc;
 * NULL when that path would not take the spec, or out of memory (*nomem = 1). */
void *hw_narrow_pack(hw_dtype_t dt, const void *w, int64_t n, int64_t k, int64_t ld, const int32_t *zp,
                     int32_t per_channel, const hw_accum_spec_t *acc, int *nomem);
void hw_narrow_pack_free(void *p);

#endif
