// pagewire's file stream (file_stream.hpp): header, payload, answer.
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <pagewire/checksum.hpp>
#include <pagewire/file_stream.hpp>
#include <pagewire/io.hpp>
#include <vector>

#include "transfer_method.hpp"

namespace pagewire {
namespace {

constexpr char kMagic[8] = {'P', 'A', 'G', 'E', 'W', 'I', 'R', 'E'};
// Version 2 added the reason to a refusal; a version-1 peer gets 8-byte answers.
constexpr std::uint32_t kVersion = 2;
constexpr std::size_t kHeaderBytes = 32;
constexpr std::size_t kAnswerBytes = 8;
constexpr std::size_t kMaxReasonBytes = 1024;
constexpr std::size_t kStreamChunkBytes = 1 << 20;  // receive_to_stream's buffer

void put32(std::byte* p, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
void put64(std::byte* p, std::uint64_t v) {
    for (int i = 0; i < 8; ++i) p[i] = static_cast<std::byte>(v >> (8 * i));
}
std::uint32_t get32(const std::byte* p) {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<std::uint32_t>(p[i]) << (8 * i);
    return v;
}
std::uint64_t get64(const std::byte* p) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
    return v;
}

// Reads exactly n bytes; false at end of stream before that.
bool read_exact(int fd, void* buf, std::size_t n, const std::string& peer) {
    auto* p = static_cast<char*>(buf);
    for (std::size_t done = 0; done < n;) {
        ssize_t r = retry_eintr([&] { return ::read(fd, p + done, n - done); });
        if (r < 0) throw_error("read", peer);
        if (r == 0) return false;
        done += static_cast<std::size_t>(r);
    }
    return true;
}

// send(2) without SIGPIPE: a peer that left is EPIPE here, whatever the
// process does with the signal.
bool send_full(int sock, const void* buf, std::size_t n) noexcept {
    const auto* p = static_cast<const char*>(buf);
    for (std::size_t done = 0; done < n;) {
        ssize_t r = retry_eintr([&] { return ::send(sock, p + done, n - done, MSG_NOSIGNAL); });
        if (r < 0) return false;
        done += static_cast<std::size_t>(r);
    }
    return true;
}

void send_all(int sock, const void* buf, std::size_t n, const std::string& peer) {
    if (!send_full(sock, buf, n)) throw_error("write", peer);
}

// The receiver's answer, as the sender reads it.
struct Answer {
    enum class Kind { Ok, Refused, None, Garbage } kind = Kind::None;
    int error = 0;
    std::string reason;
};

Answer read_answer(int sock, const std::string& peer) {
    Answer a;
    std::array<std::byte, kAnswerBytes> head{};
    if (!read_exact(sock, head.data(), head.size(), peer)) return a;
    if (std::memcmp(head.data(), "PWOK", 4) == 0) {
        a.kind = Answer::Kind::Ok;
        return a;
    }
    if (std::memcmp(head.data(), "PWNO", 4) != 0) {
        a.kind = Answer::Kind::Garbage;
        return a;
    }
    a.kind = Answer::Kind::Refused;
    a.error = static_cast<int>(get32(head.data() + 4));
    std::array<std::byte, 4> length{};
    // A version-1 receiver's refusal ends here; its one code was a mismatch.
    if (read_exact(sock, length.data(), length.size(), peer)) {
        std::uint32_t n = std::min<std::uint32_t>(get32(length.data()), kMaxReasonBytes);
        a.reason.resize(n);
        if (!read_exact(sock, a.reason.data(), n, peer)) a.reason.clear();
    }
    if (a.error <= 0 || a.error > 4095) a.error = EIO;
    if (a.reason.empty()) a.reason = "checksum mismatch: the data differs from what was sent";
    return a;
}

[[noreturn]] void refused(const std::string& peer, const Answer& a) {
    throw_error("send", peer, a.error, "the receiver failed: " + a.reason);
}

}  // namespace

TransferStats send_stream(const File& file, const std::string& path, std::uint64_t length, int sock,
                          const std::string& peer, TransferOptions options) {
    std::array<std::byte, kHeaderBytes> header{};
    std::memcpy(header.data(), kMagic, sizeof kMagic);
    put64(header.data() + 8, kVersion);  // version (32 bits) + flags (32 bits, none)
    put64(header.data() + 16, length);
    put64(header.data() + 24, checksum_file(file, 0, length));
    send_all(sock, header.data(), header.size(), peer);

    options.offset = 0;
    options.length = length;  // a file growing meanwhile must not outrun the header
    TransferStats stats;
    try {
        stats = transfer({file.fd(), path}, {sock, peer}, options);
    } catch (const Error& e) {
        // Our writes failed because the receiver left: it may have said why first.
        if (e.path() == peer && (e.error_number() == EPIPE || e.error_number() == ECONNRESET)) {
            Answer a;
            try {
                a = read_answer(sock, peer);
            } catch (const Error&) {
                // Nothing readable: the write error is what there is to report.
            }
            if (a.kind == Answer::Kind::Refused) refused(peer, a);
        }
        throw;
    }
    if (::shutdown(sock, SHUT_WR) != 0) throw_error("shutdown", peer);
    Answer a = read_answer(sock, peer);
    switch (a.kind) {
        case Answer::Kind::Ok:
            return stats;
        case Answer::Kind::Refused:
            refused(peer, a);
        case Answer::Kind::None:
            throw_error("send", peer, ECONNRESET,
                        "the receiver closed the connection without confirming");
        case Answer::Kind::Garbage:
            break;
    }
    throw_error("send", peer, EPROTO, "the receiver's answer is not a pagewire answer");
}

StreamReceiver::StreamReceiver(int sock, std::string peer) : sock_(sock), peer_(std::move(peer)) {
    std::array<std::byte, kHeaderBytes> header{};
    if (!read_exact(sock_, header.data(), header.size(), peer_)) {
        throw_error("recv", peer_, EPROTO, "the sender closed the connection before the header");
    }
    if (std::memcmp(header.data(), kMagic, sizeof kMagic) != 0) {
        throw_error("recv", peer_, EPROTO, "not a pagewire stream (bad magic)");
    }
    version_ = get32(header.data() + 8);
    if (version_ != 1 && version_ != 2) {
        throw_error("recv", peer_, EPROTO,
                    "unsupported stream version " + std::to_string(version_));
    }
    length_ = get64(header.data() + 16);
    checksum_ = get64(header.data() + 24);
}

TransferStats StreamReceiver::receive(const File& out, const std::string& name,
                                      TransferOptions options) {
    try {
        options.offset = 0;
        options.length = length_;
        options.destination_offset = 0;
        TransferStats stats;
        try {
            stats = transfer({sock_, peer_}, {out.fd(), name}, options);
        } catch (const Error& e) {
            if (e.error_number() == EIO && e.path() == peer_) {
                throw_error("recv", peer_, EIO,
                            "the sender closed the connection after " + std::to_string(out.size()) +
                                " of " + std::to_string(length_) + " bytes");
            }
            throw;
        }
        // The file has a name another process could truncate: read it guarded.
        if (checksum_file(out, 0, length_) != checksum_) {
            throw_error("recv", peer_, EIO,
                        "checksum mismatch: the data differs from what was sent");
        }
        return stats;
    } catch (const Error& e) {
        refuse(e);
        throw;
    }
}

TransferStats StreamReceiver::receive_to_stream(
    int out_fd, const std::string& name,
    const std::function<void(std::uint64_t done, std::uint64_t total)>& progress) {
    try {
        TransferStats stats;
        stats.requested = stats.chosen = stats.used = TransferMethod::ReadWrite;
        const detail::CostMeter cost;
        std::vector<std::byte> buf(kStreamChunkBytes);
        Checksum sum;
        for (std::uint64_t left = length_; left > 0;) {
            auto n = static_cast<std::size_t>(std::min<std::uint64_t>(left, buf.size()));
            if (!read_exact(sock_, buf.data(), n, peer_)) {
                throw_error("recv", peer_, EIO,
                            "the sender closed the connection after " +
                                std::to_string(stats.bytes) + " of " + std::to_string(length_) +
                                " bytes");
            }
            sum.update(buf.data(), n);
            if (write_full(out_fd, buf.data(), n) < 0) throw_error("write", name);
            stats.syscalls += 2;
            stats.bytes += n;
            left -= n;
            if (progress) progress(stats.bytes, length_);
        }
        cost.finish(stats);
        if (sum.value() != checksum_) {
            throw_error(
                "recv", peer_, EIO,
                "checksum mismatch: the data written to " + name + " differs from what was sent");
        }
        return stats;
    } catch (const Error& e) {
        refuse(e);
        throw;
    }
}

void StreamReceiver::confirm() {
    if (answered_) return;  // refused already: the sender has its answer
    std::array<std::byte, kAnswerBytes> a{};
    std::memcpy(a.data(), "PWOK", 4);
    send_all(sock_, a.data(), a.size(), peer_);
    answered_ = true;
}

void StreamReceiver::refuse(const Error& why) noexcept {
    if (answered_) return;
    answered_ = true;
    std::string reason(why.what());
    if (reason.size() > kMaxReasonBytes) reason.resize(kMaxReasonBytes);
    std::vector<std::byte> a(kAnswerBytes + 4 + reason.size());
    std::memcpy(a.data(), "PWNO", 4);
    put32(a.data() + 4, static_cast<std::uint32_t>(why.error_number()));
    std::size_t n = kAnswerBytes;
    if (version_ >= 2) {
        put32(a.data() + 8, static_cast<std::uint32_t>(reason.size()));
        std::memcpy(a.data() + 12, reason.data(), reason.size());
        n = a.size();
    }
    // Best effort: a sender that is gone cannot be told.
    if (!send_full(sock_, a.data(), n)) return;
    // Stop reading: the sender's writes now fail and it reads this answer.
    ::shutdown(sock_, SHUT_WR);
}

}  // namespace pagewire
