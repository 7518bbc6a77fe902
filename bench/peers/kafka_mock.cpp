// pagewire-bench-kafka-mock --topic NAME --partitions N [--topic NAME --partitions N]...
//
// librdkafka's in-memory mock cluster (rdkafka_mock.h), one broker on
// 127.0.0.1, as the reference peer of `pagewire bench broker`. It runs in a
// process of its own so that its CPU time (/proc/PID/stat) is the broker's
// alone. Creates the topics (the mock has no CreateTopics), prints the
// bootstrap servers as the first stdout line, then runs until SIGTERM or
// SIGINT, or until stdin reaches EOF when stdin is a pipe.
// Exit codes: 0 stopped, 1 the cluster or a topic could not be made, 2 usage.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace {

volatile sig_atomic_t stop_requested = 0;

void on_signal(int) {
    stop_requested = 1;
}

bool stdin_is_pipe() {
    struct stat st {};
    return ::fstat(STDIN_FILENO, &st) == 0 && S_ISFIFO(st.st_mode);
}

int usage(const char* why) {
    std::fprintf(stderr, "pagewire-bench-kafka-mock: %s\n", why);
    std::fprintf(stderr,
                 "usage: pagewire-bench-kafka-mock --topic NAME --partitions N "
                 "[--topic NAME --partitions N]...\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<std::pair<std::string, int>> topics;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (i + 1 >= argc) return usage(("missing value after " + arg).c_str());
        const char* value = argv[++i];
        if (arg == "--topic") {
            topics.emplace_back(value, 0);
        } else if (arg == "--partitions") {
            char* end = nullptr;
            const long n = std::strtol(value, &end, 10);
            if (topics.empty() || *end != '\0' || n <= 0 || n > 100000)
                return usage("--partitions N (1..100000) follows a --topic");
            topics.back().second = static_cast<int>(n);
        } else {
            return usage(("unknown option " + arg).c_str());
        }
    }
    if (topics.empty()) return usage("no --topic");
    for (const auto& [name, partitions] : topics)
        if (partitions == 0) return usage(("topic " + name + " has no --partitions").c_str());

    // The mock cluster lives on a client handle's threads; a producer with no
    // bootstrap servers never connects anywhere itself.
    char errstr[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    // Without bootstrap servers the handle would warn once; nothing to say.
    if (rd_kafka_conf_set(conf, "log_level", "3", errstr, sizeof errstr) != RD_KAFKA_CONF_OK) {
        std::fprintf(stderr, "pagewire-bench-kafka-mock: config: %s\n", errstr);
        return 1;
    }
    rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (rk == nullptr) {
        std::fprintf(stderr, "pagewire-bench-kafka-mock: rd_kafka_new: %s\n", errstr);
        return 1;
    }
    rd_kafka_mock_cluster_t* cluster = rd_kafka_mock_cluster_new(rk, 1);
    if (cluster == nullptr) {
        std::fprintf(stderr, "pagewire-bench-kafka-mock: rd_kafka_mock_cluster_new failed\n");
        rd_kafka_destroy(rk);
        return 1;
    }
    for (const auto& [name, partitions] : topics) {
        const rd_kafka_resp_err_t err =
            rd_kafka_mock_topic_create(cluster, name.c_str(), partitions, 1);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            std::fprintf(stderr, "pagewire-bench-kafka-mock: create topic %s: %s\n", name.c_str(),
                         rd_kafka_err2str(err));
            rd_kafka_mock_cluster_destroy(cluster);
            rd_kafka_destroy(rk);
            return 1;
        }
    }

    struct sigaction sa {};
    sa.sa_handler = on_signal;
    ::sigemptyset(&sa.sa_mask);
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);

    std::printf("%s\n", rd_kafka_mock_cluster_bootstraps(cluster));
    std::fflush(stdout);

    const bool watch_stdin = stdin_is_pipe();
    while (stop_requested == 0) {
        pollfd p{STDIN_FILENO, POLLIN, 0};
        // The timeout bounds how late a signal that arrived between the check
        // and poll is noticed.
        const int n = ::poll(watch_stdin ? &p : nullptr, watch_stdin ? 1 : 0, 200);
        if (n > 0 && watch_stdin) {
            char buf[256];
            if (::read(STDIN_FILENO, buf, sizeof buf) <= 0) break;
        }
    }
    rd_kafka_mock_cluster_destroy(cluster);
    rd_kafka_destroy(rk);
    return 0;
}
