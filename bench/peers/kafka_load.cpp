// pagewire-bench-kafka-load MODE --bootstrap HOST:PORT --topic NAME --partitions N [options]
//
// The Kafka load generator of `pagewire bench broker`, on librdkafka's public
// API only, so that every broker is driven by the same client with the same
// settings. Modes:
//   create    CreateTopics NAME with N partitions (an existing topic is fine)
//   produce   --messages M of --size S bytes, acks=1, round-robin over the
//             partitions --turn messages at a time (as Kafka's sticky
//             partitioner fills one batch before moving on), every delivery
//             report awaited
//   consume   every partition from the beginning until M messages arrived;
//             each message's sequence number and size are checked
//   latency   --rate R messages/s for --seconds D with a monotonic send time
//             in each payload; a consumer in this process measures end to end
// Prints one JSON object on stdout (rates, seconds, this process's CPU
// seconds over the measured interval, percentiles) and exits 0; on a failure
// the object has "error" and the exit code is 1; 2 is a usage error.
//
// Payload: bytes 0-7 the message's sequence number, 8-15 its send time (ns,
// CLOCK_MONOTONIC; latency mode), the rest a fixed pattern.
#include <librdkafka/rdkafka.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kHeaderBytes = 16;  // sequence number + send time
constexpr int kMetadataTimeoutMs = 10000;
constexpr int kIdleTimeoutMs = 20000;  // consume: no message this long is a failure
constexpr int kFlushTimeoutMs = 120000;
constexpr int kConsumeBatch = 10000;
constexpr double kLatencyWarmupFraction = 0.1;  // the first tenth is not counted

struct Args {
    std::string mode;
    std::string bootstrap;
    std::string topic;
    int partitions = 0;
    std::uint64_t messages = 0;
    std::size_t size = 100;
    double rate = 10000;
    double seconds = 2;
    int linger_ms = 5;
    long batch_bytes = 1000000;
    long fetch_wait_ms = 100;
    std::uint64_t turn = 1000;  // produce: messages per partition before the next one
};

[[noreturn]] void usage(const std::string& why) {
    std::fprintf(stderr, "pagewire-bench-kafka-load: %s\n", why.c_str());
    std::fprintf(stderr,
                 "usage: pagewire-bench-kafka-load create|produce|consume|latency --bootstrap "
                 "HOST:PORT --topic NAME --partitions N [--messages M] [--size BYTES] [--rate "
                 "MSGS_PER_S] [--seconds S] [--linger-ms MS] [--batch-bytes B] "
                 "[--fetch-wait-ms MS] [--turn MESSAGES]\n");
    std::exit(2);
}

double number(const std::string& option, const char* value, double min, double max) {
    char* end = nullptr;
    const double v = std::strtod(value, &end);
    if (end == value || *end != '\0' || !(v >= min && v <= max))
        usage(option + " takes a number in [" + std::to_string(min) + ", " + std::to_string(max) +
              "], not '" + value + "'");
    return v;
}

Args parse(int argc, char** argv) {
    if (argc < 2) usage("no mode");
    Args a;
    a.mode = argv[1];
    if (a.mode != "create" && a.mode != "produce" && a.mode != "consume" && a.mode != "latency")
        usage("unknown mode " + a.mode);
    for (int i = 2; i < argc; ++i) {
        const std::string o = argv[i];
        if (i + 1 >= argc) usage("missing value after " + o);
        const char* v = argv[++i];
        if (o == "--bootstrap") {
            a.bootstrap = v;
        } else if (o == "--topic") {
            a.topic = v;
        } else if (o == "--partitions") {
            a.partitions = static_cast<int>(number(o, v, 1, 100000));
        } else if (o == "--messages") {
            a.messages = static_cast<std::uint64_t>(number(o, v, 1, 1e12));
        } else if (o == "--size") {
            a.size = static_cast<std::size_t>(number(o, v, kHeaderBytes, 1 << 20));
        } else if (o == "--rate") {
            a.rate = number(o, v, 1, 1e7);
        } else if (o == "--seconds") {
            a.seconds = number(o, v, 0.1, 3600);
        } else if (o == "--linger-ms") {
            a.linger_ms = static_cast<int>(number(o, v, 0, 10000));
        } else if (o == "--batch-bytes") {
            a.batch_bytes = static_cast<long>(number(o, v, 1, 2147483647));
        } else if (o == "--turn") {
            a.turn = static_cast<std::uint64_t>(number(o, v, 1, 1e9));
        } else if (o == "--fetch-wait-ms") {
            a.fetch_wait_ms = static_cast<long>(number(o, v, 0, 60000));
        } else {
            usage("unknown option " + o);
        }
    }
    if (a.bootstrap.empty() || a.topic.empty() || a.partitions == 0)
        usage("--bootstrap, --topic and --partitions are required");
    if ((a.mode == "produce" || a.mode == "consume") && a.messages == 0)
        usage(a.mode + " needs --messages");
    return a;
}

std::int64_t monotonic_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
        .count();
}

// utime + stime of this process, all threads (librdkafka's included).
double cpu_seconds() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

std::string json_string(const std::string& s) {
    std::string out = "\"";
    for (const char c : s) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
        } else {
            out += c;
        }
    }
    return out + "\"";
}

// The JSON line, built field by field in the order they are added.
class Report {
  public:
    explicit Report(const Args& a) {
        add("mode", json_string(a.mode));
        add("librdkafka", json_string(rd_kafka_version_str()));
        add("topic", json_string(a.topic));
        add("partitions", std::to_string(a.partitions));
    }
    void add(const char* key, const std::string& raw) {
        text_ += (text_.empty() ? "{" : ",") + json_string(key) + ":" + raw;
    }
    void num(const char* key, double v) {
        char buf[64];
        std::snprintf(buf, sizeof buf, "%.9g", v);
        add(key, buf);
    }
    void count(const char* key, std::uint64_t v) { add(key, std::to_string(v)); }
    // size, seconds, msgs/s, MB/s (payload) and this process's CPU seconds.
    void rates(std::uint64_t messages, std::size_t size, double seconds, double cpu) {
        count("size", size);
        num("seconds", seconds);
        num("msgs_per_s", seconds > 0 ? static_cast<double>(messages) / seconds : 0);
        num("mb_per_s", seconds > 0 ? static_cast<double>(messages * size) / seconds / 1e6 : 0);
        num("client_cpu_s", cpu);
    }
    // Prints the line; with an error, exits 1.
    [[noreturn]] void finish(const std::string& error = {}) {
        if (!error.empty()) add("error", json_string(error));
        std::printf("%s}\n", text_.c_str());
        std::fflush(stdout);
        std::exit(error.empty() ? 0 : 1);
    }

  private:
    std::string text_;
};

rd_kafka_conf_t* base_conf(const Args& a, Report& report) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char errstr[512];
    auto set = [&](const char* key, const std::string& value) {
        if (rd_kafka_conf_set(conf, key, value.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
            report.finish(std::string("config ") + key + ": " + errstr);
    };
    set("bootstrap.servers", a.bootstrap);
    set("client.id", "pagewire-bench-kafka-load");
    return conf;
}

rd_kafka_t* make_handle(rd_kafka_type_t type, rd_kafka_conf_t* conf, Report& report) {
    char errstr[512];
    rd_kafka_t* rk = rd_kafka_new(type, conf, errstr, sizeof errstr);
    if (rk == nullptr) report.finish(std::string("rd_kafka_new: ") + errstr);
    return rk;
}

void set(rd_kafka_conf_t* conf, const char* key, const std::string& value, Report& report) {
    char errstr[512];
    if (rd_kafka_conf_set(conf, key, value.c_str(), errstr, sizeof errstr) != RD_KAFKA_CONF_OK)
        report.finish(std::string("config ") + key + ": " + errstr);
}

// Waits until the broker knows the topic with at least a.partitions
// partitions, each with a leader (a topic just created may still be settling).
void await_topic(rd_kafka_t* rk, rd_kafka_topic_t* rkt, const Args& a, Report& report) {
    const auto deadline = Clock::now() + std::chrono::milliseconds(kMetadataTimeoutMs);
    std::string why = "no metadata";
    while (Clock::now() < deadline) {
        const rd_kafka_metadata_t* md = nullptr;
        const rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 2000);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            why = rd_kafka_err2str(err);
        } else {
            bool ready = false;
            for (int t = 0; t < md->topic_cnt; ++t) {
                const rd_kafka_metadata_topic_t& topic = md->topics[t];
                if (a.topic != topic.topic) continue;
                if (topic.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
                    why = rd_kafka_err2str(topic.err);
                } else if (topic.partition_cnt < a.partitions) {
                    why = "the topic has " + std::to_string(topic.partition_cnt) + " partitions, " +
                          std::to_string(a.partitions) + " wanted";
                } else {
                    ready = true;
                    for (int p = 0; p < topic.partition_cnt; ++p)
                        ready = ready && topic.partitions[p].leader >= 0 &&
                                topic.partitions[p].err == RD_KAFKA_RESP_ERR_NO_ERROR;
                    if (!ready) why = "a partition has no leader yet";
                }
            }
            rd_kafka_metadata_destroy(md);
            if (ready) return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    report.finish("topic " + a.topic + " on " + a.bootstrap + ": " + why);
}

void fill_payload(std::vector<char>& buf, std::uint64_t seq, std::int64_t sent_ns) {
    std::memcpy(buf.data(), &seq, 8);
    std::memcpy(buf.data() + 8, &sent_ns, 8);
}

std::vector<char> pattern_payload(std::size_t size) {
    std::vector<char> buf(size);
    for (std::size_t i = kHeaderBytes; i < size; ++i) buf[i] = static_cast<char>('a' + i % 26);
    return buf;
}

// ---- create ------------------------------------------------------------------

void run_create(const Args& a) {
    Report report(a);
    rd_kafka_t* rk = make_handle(RD_KAFKA_PRODUCER, base_conf(a, report), report);
    char errstr[512];
    rd_kafka_NewTopic_t* nt =
        rd_kafka_NewTopic_new(a.topic.c_str(), a.partitions, 1, errstr, sizeof errstr);
    if (nt == nullptr) report.finish(std::string("NewTopic: ") + errstr);
    rd_kafka_queue_t* q = rd_kafka_queue_new(rk);
    rd_kafka_CreateTopics(rk, &nt, 1, nullptr, q);
    rd_kafka_event_t* ev = rd_kafka_queue_poll(q, kMetadataTimeoutMs + 5000);
    if (ev == nullptr) report.finish("CreateTopics: no answer");
    std::string error;
    if (rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        error = std::string("CreateTopics: ") + rd_kafka_event_error_string(ev);
    } else {
        size_t n = 0;
        const rd_kafka_topic_result_t** results =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        for (size_t i = 0; i < n; ++i) {
            const rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
            if (err != RD_KAFKA_RESP_ERR_NO_ERROR &&
                err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                const char* msg = rd_kafka_topic_result_error_string(results[i]);
                error = std::string("CreateTopics ") + a.topic + ": " +
                        (msg != nullptr ? msg : rd_kafka_err2str(err));
            }
        }
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
    report.finish(error);
}

// ---- produce -----------------------------------------------------------------

struct Delivery {
    std::uint64_t delivered = 0;
    std::uint64_t failed = 0;
    std::string first_error;
    Clock::time_point last{};
};

void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    Delivery& d = *static_cast<Delivery*>(opaque);
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (d.failed++ == 0) d.first_error = rd_kafka_err2str(m->err);
    } else {
        ++d.delivered;
    }
    d.last = Clock::now();
}

rd_kafka_conf_t* producer_conf(const Args& a, Report& report, Delivery* delivery) {
    rd_kafka_conf_t* conf = base_conf(a, report);
    set(conf, "acks", "1", report);
    set(conf, "linger.ms", std::to_string(a.linger_ms), report);
    set(conf, "batch.size", std::to_string(a.batch_bytes), report);
    set(conf, "compression.codec", "none", report);
    set(conf, "queue.buffering.max.messages", "1000000", report);
    set(conf, "queue.buffering.max.kbytes", "1048576", report);
    rd_kafka_conf_set_opaque(conf, delivery);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    return conf;
}

// Produces one message, waiting (serving delivery reports) while the local
// queue is full. False with `why` on a permanent error.
bool produce_one(rd_kafka_t* rk, rd_kafka_topic_t* rkt, int partition, std::vector<char>& buf,
                 std::string* why) {
    for (;;) {
        if (rd_kafka_produce(rkt, partition, RD_KAFKA_MSG_F_COPY, buf.data(), buf.size(), nullptr,
                             0, nullptr) == 0)
            return true;
        const rd_kafka_resp_err_t err = rd_kafka_last_error();
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            *why = std::string("produce: ") + rd_kafka_err2str(err);
            return false;
        }
        rd_kafka_poll(rk, 1);
    }
}

void run_produce(const Args& a) {
    Report report(a);
    Delivery d;
    rd_kafka_t* rk = make_handle(RD_KAFKA_PRODUCER, producer_conf(a, report, &d), report);
    rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, a.topic.c_str(), nullptr);
    await_topic(rk, rkt, a, report);

    std::vector<char> buf = pattern_payload(a.size);
    std::string error;
    const double cpu_start = cpu_seconds();
    const auto start = Clock::now();
    for (std::uint64_t seq = 0; seq < a.messages && error.empty(); ++seq) {
        fill_payload(buf, seq, 0);
        const int partition =
            static_cast<int>(seq / a.turn % static_cast<std::uint64_t>(a.partitions));
        if (!produce_one(rk, rkt, partition, buf, &error)) break;
        if (seq % 1024 == 0) rd_kafka_poll(rk, 0);
    }
    const auto sent = Clock::now();
    const rd_kafka_resp_err_t flushed = rd_kafka_flush(rk, kFlushTimeoutMs);
    const double cpu = cpu_seconds() - cpu_start;
    const double seconds = std::chrono::duration<double>(d.last - start).count();
    if (error.empty() && flushed != RD_KAFKA_RESP_ERR_NO_ERROR)
        error = "flush: " + std::string(rd_kafka_err2str(flushed));
    if (error.empty() && d.failed > 0)
        error = std::to_string(d.failed) + " deliveries failed, first: " + d.first_error;
    if (error.empty() && d.delivered != a.messages)
        error = std::to_string(d.delivered) + " of " + std::to_string(a.messages) + " delivered";

    report.count("messages", a.messages);
    report.count("delivered", d.delivered);
    report.num("send_seconds", std::chrono::duration<double>(sent - start).count());
    report.rates(d.delivered, a.size, seconds, cpu);
    report.count("linger_ms", static_cast<std::uint64_t>(a.linger_ms));
    report.count("batch_bytes", static_cast<std::uint64_t>(a.batch_bytes));
    report.count("turn", a.turn);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(rk);
    report.finish(error);
}

// ---- consume -----------------------------------------------------------------

// The simple (non-group) consumer: every partition from the beginning on one
// queue, read in batches; rdkafka_performance's fastest path.
struct Consumer {
    rd_kafka_t* rk = nullptr;
    rd_kafka_topic_t* rkt = nullptr;
    rd_kafka_queue_t* queue = nullptr;
    int partitions = 0;

    Consumer(const Args& a, Report& report) : partitions(a.partitions) {
        rd_kafka_conf_t* conf = base_conf(a, report);
        set(conf, "fetch.wait.max.ms", std::to_string(a.fetch_wait_ms), report);
        // Per partition: prefetch bounded so that many partitions stay within
        // memory, by bytes only. A queued.min.messages below what one fetch
        // brings (it was 20000; ~8 700 messages of 100 B per 1 MiB) makes
        // librdkafka 2.0 back the partition off for fetch.error.backoff.ms
        // (500 ms) whenever its queue passes it: consume then measured those
        // pauses (kcat over the same topic: 10.5 s with it, 2.9 s without).
        set(conf, "queued.max.messages.kbytes", "4096", report);
        set(conf, "enable.partition.eof", "false", report);
        rk = make_handle(RD_KAFKA_CONSUMER, conf, report);
        rkt = rd_kafka_topic_new(rk, a.topic.c_str(), nullptr);
        await_topic(rk, rkt, a, report);
        queue = rd_kafka_queue_new(rk);
    }
    void start(Report& report) {
        for (int p = 0; p < partitions; ++p)
            if (rd_kafka_consume_start_queue(rkt, p, RD_KAFKA_OFFSET_BEGINNING, queue) != 0)
                report.finish("consume_start partition " + std::to_string(p) + ": " +
                              rd_kafka_err2str(rd_kafka_last_error()));
    }
    ~Consumer() {
        for (int p = 0; p < partitions; ++p) rd_kafka_consume_stop(rkt, p);
        rd_kafka_queue_destroy(queue);
        rd_kafka_topic_destroy(rkt);
        rd_kafka_destroy(rk);
    }
};

struct Checked {
    std::uint64_t received = 0;
    std::uint64_t sequence_sum = 0;
    std::uint64_t wrong_size = 0;
    std::uint64_t errors = 0;
    std::string first_error;
};

// Takes one consumed message: an error is counted, a message checked.
// Returns whether it was a message.
bool take(const rd_kafka_message_t* m, std::size_t size, Checked& c, std::uint64_t* seq,
          std::int64_t* sent_ns) {
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF && c.errors++ == 0)
            c.first_error = rd_kafka_message_errstr(m);
        return false;
    }
    ++c.received;
    if (m->len != size || m->len < kHeaderBytes) {
        ++c.wrong_size;
        return false;
    }
    std::memcpy(seq, m->payload, 8);
    std::memcpy(sent_ns, static_cast<const char*>(m->payload) + 8, 8);
    c.sequence_sum += *seq;
    return true;
}

void run_consume(const Args& a) {
    Report report(a);
    Consumer consumer(a, report);
    std::vector<rd_kafka_message_t*> batch(kConsumeBatch);
    Checked c;
    const double cpu_start = cpu_seconds();
    const auto start = Clock::now();
    consumer.start(report);
    Clock::time_point first{}, last = Clock::now();
    std::string error;
    while (c.received < a.messages) {
        const ssize_t n =
            rd_kafka_consume_batch_queue(consumer.queue, 200, batch.data(), batch.size());
        if (n < 0) {
            error = std::string("consume: ") + rd_kafka_err2str(rd_kafka_last_error());
            break;
        }
        const auto now = Clock::now();
        for (ssize_t i = 0; i < n; ++i) {
            std::uint64_t seq = 0;
            std::int64_t sent = 0;
            if (take(batch[i], a.size, c, &seq, &sent) && first == Clock::time_point{}) first = now;
            rd_kafka_message_destroy(batch[i]);
        }
        if (n > 0) {
            last = now;
        } else if (now - last > std::chrono::milliseconds(kIdleTimeoutMs)) {
            error = "nothing received for " + std::to_string(kIdleTimeoutMs / 1000) + " s after " +
                    std::to_string(c.received) + " of " + std::to_string(a.messages) + " messages";
            break;
        }
    }
    const double cpu = cpu_seconds() - cpu_start;
    const double seconds = std::chrono::duration<double>(last - first).count();
    const std::uint64_t n = a.messages;
    if (error.empty() && c.errors > 0)
        error = std::to_string(c.errors) + " consume errors, first: " + c.first_error;
    if (error.empty() && c.wrong_size > 0)
        error = std::to_string(c.wrong_size) + " messages of the wrong size";
    // Exactly 0..M-1 once each (a loss plus a duplicate would also have to
    // balance the sum to pass).
    if (error.empty() && (c.received != n || c.sequence_sum != n * (n - 1) / 2))
        error = "the sequence numbers received are not 0.." + std::to_string(n - 1) + " once each";

    report.count("messages", n);
    report.count("received", c.received);
    report.num("startup_seconds", std::chrono::duration<double>(first - start).count());
    report.rates(c.received, a.size, seconds, cpu);
    report.add("verified", error.empty() ? "true" : "false");
    report.finish(error);
}

// ---- latency -----------------------------------------------------------------

void run_latency(const Args& a) {
    Report report(a);
    const std::uint64_t total = static_cast<std::uint64_t>(a.rate * a.seconds);
    const std::uint64_t warmup = static_cast<std::uint64_t>(kLatencyWarmupFraction * total);
    Delivery d;
    rd_kafka_t* producer = make_handle(RD_KAFKA_PRODUCER, producer_conf(a, report, &d), report);
    rd_kafka_topic_t* ptopic = rd_kafka_topic_new(producer, a.topic.c_str(), nullptr);
    await_topic(producer, ptopic, a, report);
    Consumer consumer(a, report);
    consumer.start(report);

    std::vector<std::int64_t> latencies;
    latencies.reserve(total);
    Checked c;
    std::atomic<bool> stop{false};
    std::atomic<std::uint64_t> seen{0};  // c.received, for the producing thread
    // One message per call: a batch call waits until its batch is full or its
    // timeout passes, which would add up to that timeout to every latency.
    std::thread reader([&] {
        while (c.received < total && !stop.load(std::memory_order_relaxed)) {
            rd_kafka_message_t* m = rd_kafka_consume_queue(consumer.queue, 100);
            if (m == nullptr) continue;
            const std::int64_t now = monotonic_ns();
            std::uint64_t seq = 0;
            std::int64_t sent = 0;
            if (take(m, a.size, c, &seq, &sent) && seq >= warmup) latencies.push_back(now - sent);
            rd_kafka_message_destroy(m);
            seen.store(c.received, std::memory_order_relaxed);
        }
    });

    std::vector<char> buf = pattern_payload(a.size);
    std::string error;
    const double interval_ns = 1e9 / a.rate;
    const std::int64_t start = monotonic_ns();
    for (std::uint64_t seq = 0; seq < total && error.empty(); ++seq) {
        const std::int64_t due = start + static_cast<std::int64_t>(interval_ns * seq);
        // Sleep while far from the send time, poll delivery reports, then spin.
        for (std::int64_t now = monotonic_ns(); now < due; now = monotonic_ns()) {
            if (due - now > 200000)
                rd_kafka_poll(producer, static_cast<int>((due - now) / 2000000));
        }
        fill_payload(buf, seq, monotonic_ns());
        if (!produce_one(producer, ptopic, static_cast<int>(seq % a.partitions), buf, &error))
            break;
        rd_kafka_poll(producer, 0);
    }
    const double produce_seconds = static_cast<double>(monotonic_ns() - start) / 1e9;
    rd_kafka_flush(producer, kFlushTimeoutMs);
    const auto deadline = Clock::now() + std::chrono::milliseconds(kIdleTimeoutMs);
    while (seen.load(std::memory_order_relaxed) < total && Clock::now() < deadline && error.empty())
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    stop = true;
    reader.join();
    if (error.empty() && d.failed > 0)
        error = std::to_string(d.failed) + " deliveries failed, first: " + d.first_error;
    if (error.empty() && c.errors > 0)
        error = std::to_string(c.errors) + " consume errors, first: " + c.first_error;
    if (error.empty() && c.received != total)
        error = std::to_string(c.received) + " of " + std::to_string(total) + " received";

    std::sort(latencies.begin(), latencies.end());
    auto at = [&](double q) {
        if (latencies.empty()) return 0.0;
        const std::size_t i =
            std::min(latencies.size() - 1, static_cast<std::size_t>(q * latencies.size()));
        return static_cast<double>(latencies[i]) / 1000.0;
    };
    report.count("messages", total);
    report.count("size", a.size);
    report.count("received", c.received);
    report.count("measured", latencies.size());
    report.num("rate", a.rate);
    report.num("seconds", produce_seconds);
    report.num("p50_us", at(0.5));
    report.num("p99_us", at(0.99));
    report.num("p999_us", at(0.999));
    report.num("max_us", latencies.empty() ? 0 : static_cast<double>(latencies.back()) / 1000.0);
    report.count("linger_ms", static_cast<std::uint64_t>(a.linger_ms));
    rd_kafka_topic_destroy(ptopic);
    rd_kafka_destroy(producer);
    report.finish(error);
}

}  // namespace

int main(int argc, char** argv) {
    const Args a = parse(argc, argv);
    if (a.mode == "create") run_create(a);
    if (a.mode == "produce") run_produce(a);
    if (a.mode == "consume") run_consume(a);
    run_latency(a);
}
