// `pagewire bench ipc`: pagewire::Channel as Methods of bench_ipc.hpp. A link
// is two SPSC channels, one per direction, each created by prepare() with
// capacity LinkLimits::depth and max_message LinkLimits::max_message under a
// name unique to this process, opened by each side as producer of one and
// consumer of the other, and removed by cleanup().
//
// Four methods, differing only in the API and the wait:
//   busy-poll loan   loan()/publish() and read()/release(): the message is
//                    written and read in place in the segment (zero copy)
//   busy-poll copy   send()/receive(): a copy in, a copy out
//   spin-then-sleep  send()/receive() with WaitMode::SpinThenSleep
//   sleep            loan API with WaitMode::Sleep (straight to the futex),
//                    the one compared with the raw futex baseline
// Nothing on the per-message path allocates or makes a system call beyond
// what the channel itself does (a futex wake when a peer sleeps).
#include <fmt/core.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <pagewire/channel.hpp>
#include <pagewire/error.hpp>
#include <vector>

#include "bench_ipc.hpp"

namespace pagewire::bench::ipc {
namespace {

// A waiting call gives up after this long: the peer is taken for dead (the
// runner kills a hung pair anyway).
constexpr std::chrono::seconds kPeerTimeout{10};

enum class Api { Loan, Copy };

// Sends on `out`, receives on `in`; both handles owned.
class ChannelEndpoint final : public Endpoint {
  public:
    ChannelEndpoint(Channel out, Channel in, std::string out_name, std::string in_name, Api api,
                    WaitMode wait)
        : out_(std::move(out)),
          in_(std::move(in)),
          out_name_(std::move(out_name)),
          in_name_(std::move(in_name)),
          api_(api),
          wait_(wait) {
        if (api_ == Api::Copy) {
            send_buffer_.resize(out_.max_message());
            receive_buffer_.resize(in_.max_message());
        }
    }

    void send(std::size_t size, const std::function<void(std::span<std::byte>)>& fill) override {
        if (api_ == Api::Loan) {
            ChannelLoan loan;
            check(out_.loan(size, loan, kPeerTimeout, wait_), "channel loan", out_name_);
            fill(std::span<std::byte>(loan.data, size));
            out_.publish(loan, size);
        } else {
            const std::span<std::byte> message = std::span(send_buffer_).first(size);
            fill(message);
            check(out_.send(message, kPeerTimeout, wait_), "channel send", out_name_);
        }
    }

    void receive(const std::function<void(std::span<const std::byte>)>& on_message) override {
        if (api_ == Api::Loan) {
            ChannelView view;
            check(in_.read(view, kPeerTimeout, wait_), "channel read", in_name_);
            on_message(std::span<const std::byte>(view.data, view.size));
            in_.release(view);
        } else {
            std::size_t size = 0;
            check(in_.receive(receive_buffer_, size, kPeerTimeout, wait_), "channel receive",
                  in_name_);
            on_message(std::span<const std::byte>(receive_buffer_.data(), size));
        }
    }

  private:
    static void check(ChannelStatus status, const char* operation, const std::string& name) {
        if (status == ChannelStatus::Ok) return;
        throw_error(operation, name, status == ChannelStatus::TimedOut ? ETIMEDOUT : EPROTO,
                    channel_status_name(status));
    }

    Channel out_;  // producer handle
    Channel in_;   // consumer handle
    std::string out_name_;
    std::string in_name_;
    Api api_;
    WaitMode wait_;
    std::vector<std::byte> send_buffer_;     // copying API: the message before send()
    std::vector<std::byte> receive_buffer_;  // copying API: max_message bytes
};

class ChannelMethod final : public Method {
  public:
    ChannelMethod(std::string name, Api api, WaitMode wait)
        : name_(std::move(name)), api_(api), wait_(wait) {}

    std::string name() const override { return name_; }

    std::optional<std::string> unavailable(const LinkLimits& limits) const override {
        if (limits.max_message > Channel::kMaxMessage)
            return fmt::format("messages of {} bytes exceed Channel::kMaxMessage ({})",
                               limits.max_message, Channel::kMaxMessage);
        return std::nullopt;
    }

    void prepare(const LinkLimits& limits) override {
        static std::atomic<unsigned> counter{0};
        const unsigned n = counter++;
        ChannelOptions options;
        options.kind = ChannelKind::Spsc;
        options.capacity = limits.depth;
        options.max_message = limits.max_message;
        for (int k = 0; k < 2; ++k) {
            // names_[0] carries side 0 -> 1, names_[1] side 1 -> 0.
            const std::string name = fmt::format("pagewire-bench-ipc-{}-{}-{}", ::getpid(), n, k);
            (void)Channel::create(name, options);  // the segment outlives the handle
            names_[k] = name;
        }
    }

    std::unique_ptr<Endpoint> connect(int side) override {
        Channel out = Channel::open(names_[side], ChannelRole::Producer, ChannelKind::Spsc);
        Channel in = Channel::open(names_[1 - side], ChannelRole::Consumer, ChannelKind::Spsc);
        return std::make_unique<ChannelEndpoint>(std::move(out), std::move(in), names_[side],
                                                 names_[1 - side], api_, wait_);
    }

    void cleanup() noexcept override {
        for (std::string& name : names_) {
            if (name.empty()) continue;
            try {
                Channel::remove(name);
            } catch (const Error&) {
                // Already gone: nothing left to remove.
            }
            name.clear();
        }
    }

  private:
    std::string name_;
    Api api_;
    WaitMode wait_;
    std::string names_[2];  // created by prepare(), removed by cleanup()
};

}  // namespace

std::vector<std::unique_ptr<Method>> pagewire_methods() {
    std::vector<std::unique_ptr<Method>> methods;
    methods.push_back(
        std::make_unique<ChannelMethod>("pagewire busy-poll loan", Api::Loan, WaitMode::BusyPoll));
    methods.push_back(
        std::make_unique<ChannelMethod>("pagewire busy-poll copy", Api::Copy, WaitMode::BusyPoll));
    methods.push_back(std::make_unique<ChannelMethod>("pagewire spin-then-sleep", Api::Copy,
                                                      WaitMode::SpinThenSleep));
    methods.push_back(
        std::make_unique<ChannelMethod>("pagewire sleep", Api::Loan, WaitMode::Sleep));
    return methods;
}

}  // namespace pagewire::bench::ipc
