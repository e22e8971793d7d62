/* CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320) as zlib's crc32()
 * computes it: the spool's checksum, chosen so Python's zlib.crc32 reads
 * the same spool at C speed with no extra package. A 1 KiB table built
 * once; the spool is written once per batch, so byte-at-a-time is enough. */
#include <pthread.h>

#include "internal.h"

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

/* crc: 0 to start, or the previous result to continue. */
uint32_t slotd__crc32(uint32_t crc, const void *p, size_t n)
{
    const unsigned char *b = p;
    pthread_once(&crc_once, crc_init);
    crc = ~crc;
    while (n--)
        crc = crc_table[(crc ^ *b++) & 0xff] ^ (crc >> 8);
    return ~crc;
}
