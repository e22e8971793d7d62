/* crc32c — CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as used by
 * iSCSI, ext4 and the slotd journal.
 *
 * crc32c() picks the fastest implementation once, at first use: the SSE4.2
 * crc32 instruction when the CPU has it, else a portable slicing-by-8 table
 * implementation. Both give identical results; the explicit variants exist
 * for tests and benchmarks.
 *
 * Values chain: crc32c(crc32c(0, a, na), b, nb) == crc32c(0, a||b, na+nb),
 * and crc32c(0, "123456789", 9) == 0xE3069283. Thread safe.
 */
#ifndef SLOTD_CRC32C_H
#define SLOTD_CRC32C_H

#include <stddef.h>
#include <stdint.h>

uint32_t crc32c(uint32_t crc, const void *p, size_t n);

/* Portable table implementation; always available. */
uint32_t crc32c_sw(uint32_t crc, const void *p, size_t n);
/* Non-zero when crc32c_hw() uses the CPU's crc32 instruction. */
int crc32c_hw_available(void);
/* Hardware implementation; falls back to crc32c_sw() when not available. */
uint32_t crc32c_hw(uint32_t crc, const void *p, size_t n);

#endif
