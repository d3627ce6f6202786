/* core/crc32.c — CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), the
 * checksum of index file sections and write-ahead-log records. Slicing-by-1
 * with a table built once; fast enough for files read once at load. */
#include <pthread.h>

#include "internal.h"

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t qx__crc32(uint32_t crc, const void *data, size_t len) {
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    crc = ~crc;
    while (len--) crc = crc_table[(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

uint32_t qx_crc32(uint32_t crc, const void *data, size_t len) { return qx__crc32(crc, data, len); }
