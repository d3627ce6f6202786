/* quant/quantizer_kinds.c — the table of quantizer kinds: the one place that
 * knows every kind a stored index may hold.
 *
 * Decisions:
 * 1. An explicit, constant table, not weak symbols or constructors. Each row
 *    names its kind's deserializer directly, so linking any program that can
 *    load an index (qx_ivf_load, qx_quantizer_deserialize) pulls every kind's
 *    objects out of a static libqinx.a: an installed library opens QINCo
 *    indexes as the build tree does. The table is complete when the library
 *    is loaded; there is no registration order to get wrong.
 * 2. Adding a kind: a QX_QUANT_… value in qinx/quantizer.h and one row here.
 *    Kinds are stored by number in the quantizer blob ("QXQZ") and in index
 *    headers, so numbers are never reused. */
#include <stddef.h>

#include "quantizer_impl.h"

static const qx__quant_kind_def kinds[] = {
    {QX_QUANT_RQ, "rq", qx__rq_deserialize},
    {QX_QUANT_QINCO, "qinco", qx__qinco_deserialize},
    /* the coming fast-scan codes take the next row (and QX_QUANT_… value) */
};

const qx__quant_kind_def *qx__quant_kind_find(uint32_t kind) {
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if ((uint32_t)kinds[i].kind == kind) return &kinds[i];
    return NULL;
}
