// `pagewire bench ipc`: the methods that move messages between two
// processes, behind one small interface, so the runner (bench_ipc.cpp)
// measures every method the same way: one-way latency by ping-pong and
// throughput by streaming, both with a sequence number and checksum in every
// message, verified on receipt.
//
// A Method owns the shared resources of one link (names, sockets, queues,
// segments). The runner calls prepare() in the parent, forks, and each
// process calls connect() for its side; both sides then send and receive.
// Links are bidirectional (the echo side answers on the same link).
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace pagewire::bench::ipc {

struct LinkLimits {
    std::size_t max_message = 0;  // largest message the run sends, bytes
    std::size_t depth = 0;        // messages in flight the link should hold (throughput runs)
};

// One process's end of a link. Not thread-safe; one per process.
class Endpoint {
  public:
    virtual ~Endpoint() = default;
    // Sends one message of `size` bytes: `fill` writes its bytes. Zero-copy
    // methods hand `fill` the memory the receiver will read (a loan);
    // copying methods hand it a local buffer and copy it out afterwards.
    // Blocks until the method accepted the message.
    virtual void send(std::size_t size, const std::function<void(std::span<std::byte>)>& fill) = 0;
    // Waits for the next message and calls `on_message` with its bytes
    // (valid only during the call: a view into shared memory, or the
    // endpoint's own buffer once the whole message arrived).
    virtual void receive(const std::function<void(std::span<const std::byte>)>& on_message) = 0;
};

class Method {
  public:
    virtual ~Method() = default;
    // Table name, e.g. "pagewire busy-poll loan", "pipe", "iceoryx".
    virtual std::string name() const = 0;
    // Why this method cannot run with these limits on this machine (a
    // package missing, a kernel limit), or nothing when it can (the default).
    virtual std::optional<std::string> unavailable(const LinkLimits& /*limits*/) const {
        return std::nullopt;
    }
    // In the parent, before fork: creates the link's resources. Throws
    // pagewire::Error (one line) on failure.
    virtual void prepare(const LinkLimits& limits) = 0;
    // In each process after fork: side 0 starts the ping-pong and streams,
    // side 1 echoes and receives the stream.
    virtual std::unique_ptr<Endpoint> connect(int side) = 0;
    // In the parent after both processes exited (also after a failure):
    // removes what prepare() created. Must not throw.
    virtual void cleanup() noexcept = 0;
};

// Kernel IPC and the baselines: pipe, Unix socket, TCP on 127.0.0.1, POSIX
// message queue, raw futex (bench_ipc_kernel.cpp).
std::vector<std::unique_ptr<Method>> kernel_methods();
// pagewire channels: busy-poll and sleeping waits, loan and copying API
// (bench_ipc_pagewire.cpp).
std::vector<std::unique_ptr<Method>> pagewire_methods();
// Third-party peers: Boost.Interprocess message_queue, ZeroMQ ipc://,
// iceoryx 2.0 with a RouDi the harness starts and stops (bench_ipc_peers.cpp).
std::vector<std::unique_ptr<Method>> peer_methods();

}  // namespace pagewire::bench::ipc
