/* mockcluster — librdkafka's Kafka-protocol mock cluster as a process, for
 * the Kafka tests (tests/integration/test_kafka.py) and local demos.
 *
 *   mockcluster [--brokers N] [--topic NAME --partitions P]...
 *
 * Creates N brokers (default 3) and each topic with P partitions
 * (replication factor min(3, N)), prints the bootstrap servers as one line
 * on stdout, then reads commands from stdin, one a line, answering each
 * with "ok" or "error <text>" on stdout:
 *
 *   down BROKER            broker BROKER (1..N) stops answering
 *   up BROKER              ... and comes back
 *   leader TOPIC P BROKER  partition P of TOPIC moves its leader
 *   topic TOPIC P          create a topic with P partitions
 *   quit                   (or EOF) destroy the cluster and exit
 *
 * The cluster lives in this process's memory: what was produced is gone
 * when it exits. Only for tests: no persistence, no security.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

static int answer(rd_kafka_resp_err_t err)
{
    if (err)
        printf("error %s\n", rd_kafka_err2str(err));
    else
        printf("ok\n");
    fflush(stdout);
    return err ? 1 : 0;
}

static int command(rd_kafka_mock_cluster_t *mc, int brokers, char *line)
{
    char a[256], b[256];
    int x, y;
    if (sscanf(line, "down %d", &x) == 1)
        return answer(rd_kafka_mock_broker_set_down(mc, x));
    if (sscanf(line, "up %d", &x) == 1)
        return answer(rd_kafka_mock_broker_set_up(mc, x));
    if (sscanf(line, "leader %255s %d %d", a, &x, &y) == 3)
        return answer(rd_kafka_mock_partition_set_leader(mc, a, x, y));
    if (sscanf(line, "topic %255s %d", a, &x) == 2)
        return answer(rd_kafka_mock_topic_create(mc, a, x, brokers < 3 ? brokers : 3));
    if (sscanf(line, "%255s", b) == 1) {
        printf("error unknown command '%s'\n", b);
        fflush(stdout);
    }
    return 1;
}

int main(int argc, char **argv)
{
    int brokers = 3;
    char errstr[512];
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--brokers") && i + 1 < argc)
            brokers = atoi(argv[++i]);
    if (brokers < 1) {
        fprintf(stderr, "mockcluster: --brokers must be >= 1\n");
        return 2;
    }
    /* The mock cluster hangs off a client handle; a producer with no
     * brokers of its own never connects anywhere. */
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!rk) {
        fprintf(stderr, "mockcluster: rd_kafka_new: %s\n", errstr);
        return 1;
    }
    rd_kafka_mock_cluster_t *mc = rd_kafka_mock_cluster_new(rk, brokers);
    if (!mc) {
        fprintf(stderr, "mockcluster: rd_kafka_mock_cluster_new failed\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--topic") && i + 3 < argc && !strcmp(argv[i + 2], "--partitions")) {
            int p = atoi(argv[i + 3]);
            rd_kafka_resp_err_t err =
                rd_kafka_mock_topic_create(mc, argv[i + 1], p, brokers < 3 ? brokers : 3);
            if (err) {
                fprintf(stderr, "mockcluster: topic %s: %s\n", argv[i + 1], rd_kafka_err2str(err));
                return 1;
            }
            i += 3;
        }
    printf("%s\n", rd_kafka_mock_cluster_bootstraps(mc));
    fflush(stdout);
    char line[1024];
    while (fgets(line, sizeof line, stdin)) {
        if (!strncmp(line, "quit", 4))
            break;
        command(mc, brokers, line);
    }
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
    return 0;
}
