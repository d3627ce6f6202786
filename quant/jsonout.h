/* quant/jsonout.h — one JSON string writer for the programs built on the
 * library (the CLI's --json outputs, the bench's results.jsonl). Internal
 * (qx__), but free of internal.h's allocator poisoning, so application code
 * that uses malloc can include it. */
#ifndef QINX_JSONOUT_H
#define QINX_JSONOUT_H

#include <stdio.h>

/* Write s to f as a JSON string, quotes included: '"' and '\\' escaped,
 * control characters as \u00XX. Paths and names may hold any byte but NUL. */
void qx__json_fputs(FILE *f, const char *s);

#endif
