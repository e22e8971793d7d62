/* kafka_conf — the Kafka flags: checks across them, the owned partitions,
 * the client-table names (kafka.h). */
#define _GNU_SOURCE /* strndup */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clients.h"
#include "gateway.h"
#include "kafka.h"
#include "log.h"

#include <librdkafka/rdkafka.h>

__attribute__((format(printf, 3, 4))) static int say(char *msg, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (cap)
        vsnprintf(msg, cap, fmt, ap);
    va_end(ap);
    return -1;
}

/* "I/N" with 0 <= I < N. */
static int parse_node(const char *s, uint32_t *i, uint32_t *n)
{
    char *end;
    if (!s || *s < '0' || *s > '9')
        return -1;
    unsigned long a = strtoul(s, &end, 10);
    if (*end != '/' || end[1] < '0' || end[1] > '9')
        return -1;
    unsigned long b = strtoul(end + 1, &end, 10);
    if (*end || b == 0 || b > KAFKA_PARTITIONS_MAX || a >= b)
        return -1;
    *i = (uint32_t)a;
    *n = (uint32_t)b;
    return 0;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* "0,2,4-7" -> sorted, duplicates refused. */
static int parse_list(const char *s, int32_t **out, size_t *n, char *msg, size_t cap)
{
    size_t len = 0, room = 16;
    int32_t *v = malloc(room * sizeof *v);
    const char *p = s;
    if (!v)
        return say(msg, cap, "out of memory");
    while (*p) {
        char *end;
        if (*p < '0' || *p > '9')
            goto bad;
        unsigned long a = strtoul(p, &end, 10), b = a;
        if (*end == '-') {
            if (end[1] < '0' || end[1] > '9')
                goto bad;
            b = strtoul(end + 1, &end, 10);
        }
        if (b < a || b >= KAFKA_PARTITIONS_MAX || (*end && *end != ','))
            goto bad;
        for (unsigned long x = a; x <= b; x++) {
            if (len == room) {
                int32_t *nv = realloc(v, (room *= 2) * sizeof *v);
                if (!nv) {
                    free(v);
                    return say(msg, cap, "out of memory");
                }
                v = nv;
            }
            v[len++] = (int32_t)x;
        }
        p = *end ? end + 1 : end;
        if (*end && !*p)
            goto bad;
    }
    if (!len)
        goto bad;
    qsort(v, len, sizeof *v, cmp_i32);
    for (size_t i = 1; i < len; i++)
        if (v[i] == v[i - 1]) {
            int dup = (int)v[i];
            free(v);
            return say(msg, cap, "--kafka-partitions: partition %d is named twice", dup);
        }
    *out = v;
    *n = len;
    return 0;
bad:
    free(v);
    return say(msg, cap, "--kafka-partitions: '%.80s' is not a list of partitions (e.g. 0,2,4-7)",
               s);
}

int kafka_owned(const server_config *cfg, int32_t count, int32_t **out, size_t *n, char *msg,
                size_t cap)
{
    if (cfg->kafka_partitions)
        return parse_list(cfg->kafka_partitions, out, n, msg, cap);
    uint32_t i, of;
    if (parse_node(cfg->kafka_node, &i, &of) != 0)
        return say(msg, cap, "--kafka-node: '%.80s' is not I/N with 0 <= I < N",
                   cfg->kafka_node ? cfg->kafka_node : "");
    if (count < 0)
        return say(msg, cap, "--kafka-node needs the topic's partition count");
    size_t len = 0;
    int32_t *v = malloc(((size_t)count / of + 1) * sizeof *v);
    if (!v)
        return say(msg, cap, "out of memory");
    for (int32_t p = (int32_t)i; p < count; p += (int32_t)of)
        v[len++] = p;
    *out = v;
    *n = len;
    return 0;
}

/* Kafka's legal topic characters: ASCII letters, digits, '.', '_', '-'. */
static int topic_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > KAFKA_TOPIC_MAX)
        return 0;
    return strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

/* Every --kafka-conf line is KEY=VALUE. */
static int conf_lines_check(const char *conf, char *msg, size_t cap)
{
    for (const char *p = conf; p && *p;) {
        size_t l = strcspn(p, "\n");
        const char *eq = memchr(p, '=', l);
        if (!eq || eq == p)
            return say(msg, cap, "--kafka-conf: '%.*s' is not KEY=VALUE", (int)(l > 80 ? 80 : l), p);
        p += l + (p[l] == '\n');
    }
    return 0;
}

int kafka_config_check(const server_config *cfg, char *msg, size_t cap)
{
    const char *given = cfg->kafka_brokers      ? "--kafka-brokers"
                        : cfg->kafka_topic      ? "--kafka-topic"
                        : cfg->kafka_partitions ? "--kafka-partitions"
                        : cfg->kafka_node       ? "--kafka-node"
                        : cfg->kafka_conf       ? "--kafka-conf"
                                                : NULL;
    if (cfg->gateway) {
        if (cfg->source == SERVER_SOURCE_KAFKA)
            return say(msg, cap, "--gateway and --source kafka: a gateway feeds Kafka, a node "
                       "reads it; use one");
        if (cfg->kafka_partitions || cfg->kafka_node)
            return say(msg, cap, "%s is for nodes (--source kafka), not --gateway",
                       cfg->kafka_partitions ? "--kafka-partitions" : "--kafka-node");
        if (!cfg->kafka_brokers || !*cfg->kafka_brokers || !cfg->kafka_topic)
            return say(msg, cap, "--gateway needs --kafka-brokers and --kafka-topic");
        if (!topic_ok(cfg->kafka_topic))
            return say(msg, cap, "--kafka-topic: '%.80s' is not 1-%d of [a-zA-Z0-9._-]",
                       cfg->kafka_topic, KAFKA_TOPIC_MAX);
        if (cfg->gateway_seq_topic && !topic_ok(cfg->gateway_seq_topic))
            return say(msg, cap, "--gateway-seq-topic: '%.80s' is not 1-%d of [a-zA-Z0-9._-]",
                       cfg->gateway_seq_topic, KAFKA_TOPIC_MAX);
        for (const char *p = cfg->gateway_nodes; p && *p;) {
            size_t l = strcspn(p, "\n");
            uint32_t i, n;
            char host[GATEWAY_HOST_MAX];
            int port;
            if (gateway_node_parse(p, l, &i, &n, host, sizeof host, &port) != 0)
                return say(msg, cap, "--gateway-node: '%.*s' is not I/N@HOST:PORT with 0 <= I < N",
                           (int)(l > 80 ? 80 : l), p);
            p += l + (p[l] == '\n');
        }
        char name[GATEWAY_CRED_NAME_MAX + 1];
        const char *secret;
        if (cfg->gateway_node_token &&
            gateway_node_cred(cfg->gateway_node_token, name, sizeof name, &secret) != 0)
            return say(msg, cap, "--gateway-node-token-file: NAME:SECRET needs a NAME of 1-%d "
                       "bytes and a SECRET (the file is not quoted: it holds a secret)",
                       GATEWAY_CRED_NAME_MAX);
        return conf_lines_check(cfg->kafka_conf, msg, cap);
    }
    if (cfg->gateway_seq_topic || cfg->gateway_nodes || cfg->gateway_nodes_file ||
        cfg->gateway_node_token)
        return say(msg, cap, "%s needs --gateway",
                   cfg->gateway_seq_topic ? "--gateway-seq-topic"
                   : cfg->gateway_nodes   ? "--gateway-node"
                   : cfg->gateway_nodes_file ? "--gateway-nodes-file"
                                             : "--gateway-node-token-file");
    if (cfg->source != SERVER_SOURCE_KAFKA) {
        if (given)
            return say(msg, cap, "%s needs --source kafka or --gateway", given);
        return 0;
    }
    if (!cfg->kafka_brokers || !*cfg->kafka_brokers)
        return say(msg, cap, "--source kafka needs --kafka-brokers");
    if (!cfg->kafka_topic)
        return say(msg, cap, "--source kafka needs --kafka-topic");
    if (!topic_ok(cfg->kafka_topic))
        return say(msg, cap, "--kafka-topic: '%.80s' is not 1-%d of [a-zA-Z0-9._-]",
                   cfg->kafka_topic, KAFKA_TOPIC_MAX);
    if (!cfg->kafka_partitions == !cfg->kafka_node)
        return say(msg, cap, "--source kafka needs one of --kafka-partitions and --kafka-node");
    if (cfg->journal_off)
        return say(msg, cap, "--source kafka keeps its offsets in snapshots: not with --no-journal");
    int32_t *v = NULL;
    size_t n = 0;
    if (kafka_owned(cfg, KAFKA_PARTITIONS_MAX, &v, &n, msg, cap) != 0)
        return -1;
    free(v);
    return conf_lines_check(cfg->kafka_conf, msg, cap);
}

size_t kafka_offset_name(char *buf, size_t cap, const char *topic, int32_t p)
{
    int n = snprintf(buf, cap, "kafka:%s:%d", topic, (int)p);
    return n < 0 || (size_t)n >= cap || n > CLIENTS_NAME_MAX ? 0 : (size_t)n;
}

size_t kafka_dedupe_name(char *buf, size_t cap, const char *client, size_t clen, int32_t p)
{
    if (clen == 0 || clen > PROTO_NAME_MAX)
        return 0;
    int n = snprintf(buf, cap, "gw:%.*s:%d", (int)clen, client, (int)p);
    return n < 0 || (size_t)n >= cap || n > CLIENTS_NAME_MAX ? 0 : (size_t)n;
}

static int conf_set(rd_kafka_conf_t *conf, const char *key, const char *val)
{
    char errstr[512];
    if (rd_kafka_conf_set(conf, key, val, errstr, sizeof errstr) == RD_KAFKA_CONF_OK)
        return 0;
    log_error("kafka_conf_failed key=%s err=\"%s\"", key, errstr);
    return -1;
}

rd_kafka_conf_t *kafka_conf_new(const char *set[][2], size_t n, const char *user)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    for (size_t i = 0; i < n; i++)
        if (conf_set(conf, set[i][0], set[i][1]) != 0)
            goto fail;
    for (const char *p = user; p && *p;) {
        size_t l = strcspn(p, "\n"), eq = strcspn(p, "=");
        char *kv = strndup(p, l);
        if (!kv)
            goto fail;
        kv[eq] = '\0';
        int rc = conf_set(conf, kv, kv + eq + 1);
        free(kv);
        if (rc != 0)
            goto fail;
        p += l + (p[l] == '\n');
    }
    return conf;
fail:
    rd_kafka_conf_destroy(conf);
    return NULL;
}
