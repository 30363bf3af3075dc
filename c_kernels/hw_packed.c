/* hw_packed.c -- the public packing entry points: one handle (hw_packed.h)
 * holding the vnni part and, for narrow saturating specs, the narrow part.
 * acc == NULL packs for the int32 accumulator (the vnni part only). */
#include <stdlib.h>
#include "hw_kernels.h"
#include "hw_packed.h"

static hw_status_t finish(hw_packed_t *h, int nomem, void **packed)
{
    if (nomem) {
        hw_packed_free(h);
        return HW_ERR_NOMEM;
    }
    if (h->vnni == NULL && h->narrow == NULL) {   /* no fast path would read it */
        hw_packed_free(h);
        return HW_OK;
    }
    *packed = h;
    return HW_OK;
}

static hw_packed_t *new_handle(void)
{
    hw_packed_t *h = (hw_packed_t *)calloc(1, sizeof(hw_packed_t));
    if (h) h->magic = HW_PACKED_MAGIC;
    return h;
}

static int zero_points_ok(const int32_t *zp, int32_t per_channel)
{
    return zp != NULL || !per_channel;
}

hw_status_t hw_pack_gemm_b(const hw_gemm_args_t *args, const hw_accum_spec_t *acc, void **packed)
{
    if (!packed) return HW_ERR_ARG;
    *packed = NULL;
    if (!args || args->N <= 0 || args->K <= 0 || !args->b || args->ldb < args->K
        || !zero_points_ok(args->b_zero_point, args->b_zp_per_channel))
        return HW_ERR_ARG;
    if (args->b_dtype != HW_DT_S8 && args->b_dtype != HW_DT_U8 && args->b_dtype != HW_DT_S16) return HW_OK;
    hw_packed_t *h = new_handle();
    if (!h) return HW_ERR_NOMEM;
    int nomem = 0;
    h->vnni = hw_vnni_pack(args->b_dtype, args->b, args->ldb, args->N, args->K, &nomem);
    if (!nomem && acc)
        h->narrow = hw_narrow_pack(args->b_dtype, args->b, args->N, args->K, args->ldb, args->b_zero_point,
                                   args->b_zp_per_channel, acc, &nomem);
    return finish(h, nomem, packed);
}

hw_status_t hw_pack_conv2d_w(const hw_conv2d_args_t *args, const hw_accum_spec_t *acc, void **packed)
{
    if (!packed) return HW_ERR_ARG;
    *packed = NULL;
    if (!args || !args->w || args->out_c <= 0 || args->kernel_h <= 0 || args->kernel_w <= 0
        || args->in_c <= 0 || args->groups <= 0 || args->in_c % args->groups != 0
        || !zero_points_ok(args->w_zero_point, args->w_zp_per_channel))
        return HW_ERR_ARG;
    if (args->w_dtype != HW_DT_S8 && args->w_dtype != HW_DT_U8 && args->w_dtype != HW_DT_S16) return HW_OK;
    if (args->groups != 1) return HW_OK;   /* grouped / depthwise paths read the weights in place */
    if (args->kernel_h > INT64_MAX / args->kernel_w / args->in_c) return HW_ERR_ARG;
    const int64_t k = args->kernel_h * args->kernel_w * args->in_c;
    hw_packed_t *h = new_handle();
    if (!h) return HW_ERR_NOMEM;
    int nomem = 0;
    h->vnni = hw_vnni_pack(args->w_dtype, args->w, k, args->out_c, k, &nomem);
    if (!nomem && acc)
        h->narrow = hw_narrow_pack(args->w_dtype, args->w, args->out_c, k, k, args->w_zero_point,
                                   args->w_zp_per_channel, acc, &nomem);
    return finish(h, nomem, packed);
}

void hw_packed_free(void *packed)
{
    hw_packed_t *h = (hw_packed_t *)packed;
    if (!h || h->magic != HW_PACKED_MAGIC) return;
    hw_vnni_pack_free(h->vnni);
    hw_narrow_pack_free(h->narrow);
    h->magic = 0;
    free(h);
}
