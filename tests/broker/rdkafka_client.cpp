// A small librdkafka (Debian's 2.0) client for the broker tests, on the
// public C API as an application would use it:
//   rdkafka-client BOOTSTRAP TOPIC GROUP FIRST COUNT
// produces COUNT keyed messages "key<i % 13>" = "value-<i>" for i in
// FIRST..FIRST+COUNT-1 (idempotent, acks=all, every delivery report
// checked), then consumes COUNT messages in group GROUP (subscribe, the
// group's committed offsets or the earliest), prints "partition offset key
// value" per message, commits synchronously and leaves the group. Exit 0 on
// success, 1 with a line on stderr otherwise.
#include <librdkafka/rdkafka.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

[[noreturn]] void fail(const std::string& why) {
    std::fprintf(stderr, "rdkafka-client: %s\n", why.c_str());
    std::exit(1);
}

rd_kafka_conf_t* config(const char* bootstrap,
                        std::initializer_list<std::pair<const char*, const char*>> settings) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[512];
    if (rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof err) !=
        RD_KAFKA_CONF_OK)
        fail(err);
    for (const auto& [key, value] : settings)
        if (rd_kafka_conf_set(conf, key, value, err, sizeof err) != RD_KAFKA_CONF_OK)
            fail(std::string(key) + ": " + err);
    return conf;
}

int delivery_errors = 0;
std::string first_delivery_error;

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void*) {
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR && delivery_errors++ == 0)
        first_delivery_error = rd_kafka_err2str(m->err);
}

void produce(const char* bootstrap, const char* topic, long first, long count) {
    rd_kafka_conf_t* conf =
        config(bootstrap, {{"enable.idempotence", "true"}, {"acks", "all"}, {"linger.ms", "2"}});
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    char err[512];
    rd_kafka_t* p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (p == nullptr) fail(err);
    // rd_kafka_produce, not producev: the RD_KAFKA_V_* macros are GNU
    // statement expressions, which clang -Wpedantic -Werror refuses.
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(p, topic, nullptr);
    if (rkt == nullptr) fail(std::string("topic: ") + rd_kafka_err2str(rd_kafka_last_error()));
    for (long i = first; i < first + count; ++i) {
        std::string key = "key" + std::to_string(i % 13);
        std::string value = "value-" + std::to_string(i);
        while (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, value.data(),
                                value.size(), key.data(), key.size(), nullptr) != 0) {
            const rd_kafka_resp_err_t e = rd_kafka_last_error();
            if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                fail(std::string("produce: ") + rd_kafka_err2str(e));
            rd_kafka_poll(p, 50);
        }
        rd_kafka_poll(p, 0);
    }
    if (rd_kafka_flush(p, 30000) != RD_KAFKA_RESP_ERR_NO_ERROR) fail("flush: timed out");
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(p);
    if (delivery_errors > 0)
        fail(std::to_string(delivery_errors) +
             " deliveries failed, first: " + first_delivery_error);
}

void consume(const char* bootstrap, const char* topic, const char* group, long count) {
    rd_kafka_conf_t* conf = config(
        bootstrap,
        {{"group.id", group}, {"auto.offset.reset", "earliest"}, {"enable.auto.commit", "false"}});
    char err[512];
    rd_kafka_t* c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (c == nullptr) fail(err);
    rd_kafka_poll_set_consumer(c);
    rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
    if (const rd_kafka_resp_err_t e = rd_kafka_subscribe(c, topics))
        fail(std::string("subscribe: ") + rd_kafka_err2str(e));
    rd_kafka_topic_partition_list_destroy(topics);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(40);
    for (long got = 0; got < count;) {
        if (std::chrono::steady_clock::now() > deadline)
            fail("consumed only " + std::to_string(got) + " of " + std::to_string(count));
        rd_kafka_message_t* m = rd_kafka_consumer_poll(c, 500);
        if (m == nullptr) continue;
        if (const rd_kafka_resp_err_t e = m->err) {
            const std::string why = rd_kafka_message_errstr(m);
            rd_kafka_message_destroy(m);
            if (e == RD_KAFKA_RESP_ERR__PARTITION_EOF) continue;
            fail("consume: " + why);
        }
        std::printf("%d %lld %.*s %.*s\n", m->partition, static_cast<long long>(m->offset),
                    static_cast<int>(m->key_len), static_cast<const char*>(m->key),
                    static_cast<int>(m->len), static_cast<const char*>(m->payload));
        rd_kafka_message_destroy(m);
        ++got;
    }
    if (const rd_kafka_resp_err_t e = rd_kafka_commit(c, nullptr, 0))
        fail(std::string("commit: ") + rd_kafka_err2str(e));
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 6) fail("usage: rdkafka-client BOOTSTRAP TOPIC GROUP FIRST COUNT");
    const long first = std::atol(argv[4]), count = std::atol(argv[5]);
    produce(argv[1], argv[2], first, count);
    consume(argv[1], argv[2], argv[3], count);
    return std::fflush(stdout) == 0 ? 0 : 1;
}
