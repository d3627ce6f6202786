/* quant/jsonout.c — see jsonout.h. The DERP report builds its JSON in memory
 * with its own string builder (derp_report.c); this one streams to a FILE. */
#include "jsonout.h"

void qx__json_fputs(FILE *f, const char *s) {
    fputc('"', f);
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') fprintf(f, "\\%c", *c);
        else if (*c < 0x20) fprintf(f, "\\u%04x", *c);
        else fputc(*c, f);
    }
    fputc('"', f);
}
