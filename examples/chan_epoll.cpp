// chan_epoll NAME COUNT — publish/subscribe between processes, with the
// subscriber sleeping in an epoll loop. The parent creates the pubsub channel
// /NAME, forks a subscriber, waits until it has joined, then publishes
// COUNT lines "tick N" and "bye". The subscriber waits with epoll on the
// channel's descriptor (Channel::notify_fd + arm), so it could wait on sockets
// and timers in the same loop, and prints what it got.
#include <sys/epoll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <pagewire/channel.hpp>
#include <pagewire/error.hpp>
#include <span>
#include <string>
#include <string_view>
#include <thread>

using namespace std::chrono_literals;

namespace {

int subscribe(const std::string& name, int joined_fd) {
    auto ch = pagewire::Channel::open(name, pagewire::ChannelRole::Consumer);
    // Joined: it gets everything published from now on. Tell the publisher.
    const char one = 1;
    if (::write(joined_fd, &one, 1) != 1) return 1;
    ::close(joined_fd);
    const int ep = ::epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    if (ep < 0 || ::epoll_ctl(ep, EPOLL_CTL_ADD, ch.notify_fd(), &ev) != 0) {
        std::perror("chan_epoll: epoll");
        return 1;
    }
    int got = 0;
    for (;;) {
        pagewire::ChannelView view;
        while (ch.try_read(view) == pagewire::ChannelStatus::Ok) {
            std::string_view text(reinterpret_cast<const char*>(view.data), view.size);
            const bool bye = text == "bye";
            if (!bye) {
                std::printf("subscriber got: %.*s\n", static_cast<int>(text.size()), text.data());
                ++got;
            }
            ch.release(view);
            if (bye) {
                std::printf("subscriber: %d messages, %llu lost\n", got,
                            static_cast<unsigned long long>(ch.lost()));
                return 0;
            }
        }
        // Nothing to read: ask to be signalled, re-check, then sleep. A
        // timeout lets try_read find a publisher that died (see arm()).
        if (ch.arm()) (void)::epoll_wait(ep, &ev, 1, 20);
    }
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: chan_epoll NAME COUNT\n");
        return 2;
    }
    const std::string name = argv[1];
    const int count = std::atoi(argv[2]);
    try {
        pagewire::ChannelOptions options;
        options.kind = pagewire::ChannelKind::PubSub;
        options.capacity = 8;
        options.max_message = 64;
        auto publisher = pagewire::Channel::create(name, options, pagewire::ChannelRole::Producer);
        std::fflush(stdout);
        int joined[2];
        if (::pipe(joined) != 0) {
            std::perror("chan_epoll: pipe");
            return 1;
        }
        const pid_t child = ::fork();
        if (child == 0) {
            ::close(joined[0]);
            int rc = 1;
            try {
                rc = subscribe(name, joined[1]);
            } catch (const pagewire::Error& e) {
                std::fprintf(stderr, "chan_epoll: %s\n", e.what());
            }
            std::fflush(stdout);
            ::_exit(rc);
        }
        // Subscribers see what is published after they have joined, which is
        // when Channel::open returns in the subscriber (stats().consumers
        // counts it a little earlier, while it still takes its position):
        // wait for its word.
        ::close(joined[1]);
        char word = 0;
        if (::read(joined[0], &word, 1) != 1) {
            std::fprintf(stderr, "chan_epoll: the subscriber did not join\n");
            ::waitpid(child, nullptr, 0);
            pagewire::Channel::remove(name);
            return 1;
        }
        ::close(joined[0]);
        for (int i = 0; i <= count; ++i) {
            const std::string text = i < count ? "tick " + std::to_string(i + 1) : "bye";
            if (publisher.send(std::as_bytes(std::span(text.data(), text.size())), 5s) !=
                pagewire::ChannelStatus::Ok) {
                std::fprintf(stderr, "chan_epoll: send timed out\n");
                break;
            }
            std::this_thread::sleep_for(2ms);  // let the subscriber fall asleep in between
        }
        int status = 0;
        ::waitpid(child, &status, 0);
        pagewire::Channel::remove(name);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
    } catch (const pagewire::Error& e) {  // one line: "<operation> <name>: <reason>"
        std::fprintf(stderr, "chan_epoll: %s\n", e.what());
        return 1;
    }
}
