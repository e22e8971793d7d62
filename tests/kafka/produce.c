/* kproduce — produce framed records from stdin to Kafka, for the tests
 * (there is no Kafka library for Debian's python3 here).
 *
 *   kproduce BROKERS TOPIC [key=value ...]   (extra librdkafka settings)
 *
 * stdin: records back to back, little endian:
 *   i32 partition (-1: Kafka's default partitioner for the key, murmur2
 *       as Java producers use)
 *   u32 key length (0xffffffff: no key), key bytes
 *   u32 value length, value bytes
 *   u16 header count, then per header: u16 name length, name,
 *       u32 value length, value
 * Every record is delivered (acks=all, idempotent) before the exit; the
 * exit status is 0 only if every delivery succeeded. Prints "produced N".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>

static long failed, delivered;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk, (void)opaque;
    if (m->err) {
        failed++;
        fprintf(stderr, "kproduce: delivery failed: %s\n", rd_kafka_err2str(m->err));
    } else {
        delivered++;
    }
}

static int rd(void *p, size_t n) { return n == 0 || fread(p, 1, n, stdin) == n ? 0 : -1; }

static int rd32(uint32_t *v)
{
    unsigned char b[4];
    if (rd(b, 4) < 0)
        return -1;
    *v = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    return 0;
}

static int rd16(uint16_t *v)
{
    unsigned char b[2];
    if (rd(b, 2) < 0)
        return -1;
    *v = (uint16_t)(b[0] | b[1] << 8);
    return 0;
}

static void *rdbuf(uint32_t n)
{
    char *p = malloc(n + 1u);
    if (p && rd(p, n) < 0) {
        free(p);
        return NULL;
    }
    return p;
}

int main(int argc, char **argv)
{
    char errstr[512];
    if (argc < 3) {
        fprintf(stderr, "usage: kproduce BROKERS TOPIC [key=value ...] < records\n");
        return 2;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* Ours first, then the caller's key=value arguments (theirs win). */
    static const char *const ours[] = {"acks=all", "enable.idempotence=true",
                                       "partitioner=murmur2_random", "linger.ms=5"};
    size_t nours = sizeof ours / sizeof ours[0];
    char boot[1024];
    snprintf(boot, sizeof boot, "bootstrap.servers=%s", argv[1]);
    for (size_t i = 0; i < nours + 1 + (size_t)(argc - 3); i++) {
        char kv[1024];
        snprintf(kv, sizeof kv, "%s", i < nours ? ours[i] : i == nours ? boot : argv[i - nours + 2]);
        char *eq = strchr(kv, '=');
        if (!eq) {
            fprintf(stderr, "kproduce: '%s' is not key=value\n", kv);
            return 2;
        }
        *eq = '\0';
        if (rd_kafka_conf_set(conf, kv, eq + 1, errstr, sizeof errstr)) {
            fprintf(stderr, "kproduce: %s\n", errstr);
            return 2;
        }
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "kproduce: %s\n", errstr);
        return 1;
    }
    long n = 0;
    for (;;) {
        unsigned char pb[4];
        if (fread(pb, 1, 4, stdin) != 4)
            break;
        int32_t part = (int32_t)((uint32_t)pb[0] | (uint32_t)pb[1] << 8 | (uint32_t)pb[2] << 16 |
                                 (uint32_t)pb[3] << 24);
        uint32_t klen, vlen;
        uint16_t nh;
        void *key = NULL, *val = NULL;
        if (rd32(&klen) < 0 || (klen != UINT32_MAX && !(key = rdbuf(klen))) || rd32(&vlen) < 0 ||
            !(val = rdbuf(vlen)) || rd16(&nh) < 0) {
            fprintf(stderr, "kproduce: truncated record %ld\n", n);
            return 2;
        }
        rd_kafka_headers_t *hdrs = rd_kafka_headers_new(nh);
        for (uint16_t h = 0; h < nh; h++) {
            uint16_t hn;
            uint32_t hv;
            char *name = NULL, *hval = NULL;
            if (rd16(&hn) < 0 || !(name = rdbuf(hn)) || rd32(&hv) < 0 || !(hval = rdbuf(hv))) {
                fprintf(stderr, "kproduce: truncated header in record %ld\n", n);
                return 2;
            }
            rd_kafka_header_add(hdrs, name, hn, hval, hv);
            free(name);
            free(hval);
        }
        rd_kafka_resp_err_t err;
        while ((err = rd_kafka_producev(
                    rk, RD_KAFKA_V_TOPIC(argv[2]), RD_KAFKA_V_PARTITION(part),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_KEY(key, klen == UINT32_MAX ? 0 : klen), RD_KAFKA_V_VALUE(val, vlen),
                    RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(rk, 100);
        if (err) {
            fprintf(stderr, "kproduce: produce: %s\n", rd_kafka_err2str(err));
            rd_kafka_headers_destroy(hdrs);
            return 1;
        }
        free(key);
        free(val);
        rd_kafka_poll(rk, 0);
        n++;
    }
    rd_kafka_flush(rk, 60000);
    rd_kafka_poll(rk, 0);
    long pending = rd_kafka_outq_len(rk);
    rd_kafka_destroy(rk);
    printf("produced %ld\n", delivered);
    if (failed || pending || delivered != n) {
        fprintf(stderr, "kproduce: %ld of %ld delivered, %ld failed, %ld pending\n", delivered, n,
                failed, pending);
        return 1;
    }
    return 0;
}
