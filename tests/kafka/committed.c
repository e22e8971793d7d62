/* kcommitted — print the offsets a consumer group committed to Kafka, for
 * the tests (a slotd node commits its snapshot's offsets after each
 * checkpoint, for lag monitors; nothing else reads them back).
 *
 *   kcommitted BROKERS GROUP TOPIC PARTITIONS
 *
 * stdout: one line per partition, "partition offset" (-1001: nothing
 * committed). Exit status 0 only if the coordinator answered.
 */
#include <stdio.h>
#include <stdlib.h>

#include <librdkafka/rdkafka.h>

int main(int argc, char **argv)
{
    char errstr[512];
    if (argc != 5) {
        fprintf(stderr, "usage: kcommitted BROKERS GROUP TOPIC PARTITIONS\n");
        return 2;
    }
    int nparts = atoi(argv[4]);
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], errstr, sizeof errstr) ||
        rd_kafka_conf_set(conf, "group.id", argv[2], errstr, sizeof errstr)) {
        fprintf(stderr, "kcommitted: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return 1;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "kcommitted: %s\n", errstr);
        return 1;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(nparts);
    for (int p = 0; p < nparts; p++)
        rd_kafka_topic_partition_list_add(l, argv[3], p);
    rd_kafka_resp_err_t err = rd_kafka_committed(rk, l, 30000);
    if (err)
        fprintf(stderr, "kcommitted: %s\n", rd_kafka_err2str(err));
    else
        for (int i = 0; i < l->cnt; i++)
            printf("%d %lld\n", l->elems[i].partition, (long long)l->elems[i].offset);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return err ? 1 : 0;
}
