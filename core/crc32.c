/* core/crc32.c — CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), the
 * checksum of index file sections, segment files and write-ahead-log
 * records.
 *
 * Slicing-by-8 (Kounavis and Berry, "A systematic approach to building high
 * performance software-based CRC generators", ISCC 2005): eight tables, eight
 * bytes a step, the same values as the byte-at-a-time loop (which remains
 * for the unaligned head and the tail). The byte loop ran at ~0.5 GB/s and was
 * ~10 % of the server's time while loading points (a CRC over every log
 * record) and a full pass at every segment open; this one is ~4x faster.
 * Little-endian only (the file formats are little-endian too). */
#include <pthread.h>
#include <string.h>

#include "internal.h"

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xFF];
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "core/crc32.c: slicing-by-8 as written assumes a little-endian machine"
#endif

uint32_t qx__crc32(uint32_t crc, const void *data, size_t len) {
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    crc = ~crc;
    while (len && ((uintptr_t)p & 7)) {
        crc = crc_table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
        len--;
    }
    for (; len >= 8; len -= 8, p += 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
        lo ^= crc;
        crc = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^ crc_table[5][(lo >> 16) & 0xFF] ^
              crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xFF] ^ crc_table[2][(hi >> 8) & 0xFF] ^
              crc_table[1][(hi >> 16) & 0xFF] ^ crc_table[0][hi >> 24];
    }
    while (len--) crc = crc_table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
    return ~crc;
}

uint32_t qx_crc32(uint32_t crc, const void *data, size_t len) { return qx__crc32(crc, data, len); }

/* ---- combining: CRC(A || B) from CRC(A), CRC(B) and len(B) ------------------
 * CRC(A || B) = CRC(A) * x^(8 len(B)) mod P  xor  CRC(B) (the pre- and
 * post-inversions cancel), with products in GF(2)[x] mod P in the reflected
 * bit order of the table code. x^(2^k) mod P is squared up once; x^(8 len)
 * is then a product over the bits of len (as zlib's crc32_combine does).
 * Why: one CRC of a long section can be computed in pieces on several cores
 * (restart checks ~50 bytes a point of segment metadata and codes). */
#define CRC_POLY 0xEDB88320u
static uint32_t x2n_table[64];
static pthread_once_t x2n_once = PTHREAD_ONCE_INIT;

static uint32_t multmodp(uint32_t a, uint32_t b) { /* a * b mod P (bit 31 = x^0) */
    uint32_t m = (uint32_t)1 << 31, p = 0;
    for (;;) {
        if (a & m) {
            p ^= b;
            if ((a & (m - 1)) == 0) break;
        }
        m >>= 1;
        b = b & 1 ? (b >> 1) ^ CRC_POLY : b >> 1;
    }
    return p;
}

static void x2n_init(void) {
    uint32_t p = (uint32_t)1 << 30; /* x^1 */
    for (int k = 0; k < 64; k++) {
        x2n_table[k] = p;
        p = multmodp(p, p);
    }
}

uint32_t qx__crc32_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
    pthread_once(&x2n_once, x2n_init);
    uint32_t p = (uint32_t)1 << 31; /* x^0 */
    for (unsigned k = 3; len_b; len_b >>= 1, k++) /* x^(len_b * 2^3) */
        if (len_b & 1) p = multmodp(x2n_table[k & 63], p);
    return multmodp(p, crc_a) ^ crc_b;
}

uint32_t qx_crc32_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b) {
    return qx__crc32_combine(crc_a, crc_b, len_b);
}
