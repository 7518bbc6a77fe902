// pagewire's file stream: one file over a connected stream socket, checked
// end to end and confirmed by the receiver (what `pagewire send` and
// `pagewire recv` speak).
//
// On the wire: a 32-byte header (magic "PAGEWIRE", version, flags, payload
// length, checksum of the payload, see checksum.hpp), the payload, then the
// receiver's answer once it has every byte and has checked them: "PWOK" or
// "PWNO", a 32-bit errno and (version 2) a 32-bit length and that many bytes
// of the receiver's one-line reason, so the sender can say why a transfer
// failed on the far side (a full disk, a checksum mismatch) instead of
// "Broken pipe". A receiver that fails mid-payload answers at once and
// closes; the sender reads that answer after its writes fail. Integers are
// little-endian.
#pragma once

#include <cstdint>
#include <functional>
#include <pagewire/config.hpp>
#include <pagewire/error.hpp>
#include <pagewire/file.hpp>
#include <pagewire/transfer.hpp>
#include <string>
#include <string_view>

namespace pagewire {

// Sends bytes [0, length) of `file` (named `path` in errors) on `sock` (a
// connected stream socket named `peer`) as one stream and waits for the
// receiver's answer. The checksum is computed first, guarded (a file
// truncated meanwhile is an Error, never a SIGBUS); the payload moves by
// transfer() with `options` (its offset and length are set here; progress
// is honoured). Throws Error("send", peer, ...) with the receiver's own
// reason when it refused the stream, or when it left without answering.
// A receiver that leaves makes writes fail with EPIPE: the caller should
// ignore SIGPIPE.
TransferStats send_stream(const File& file, const std::string& path, std::uint64_t length, int sock,
                          const std::string& peer, TransferOptions options);

// The receiving side of one stream, on a connected socket it does not own.
// Each receive_* call checks the payload's checksum; when it throws it has
// already told the sender why. After a successful receive the caller
// confirms (the file is in place) or refuses (it could not be put there).
class StreamReceiver {
  public:
    // Reads and checks the header: Error(EPROTO) for a connection that is
    // not a pagewire stream, or that ends before its header.
    StreamReceiver(int sock, std::string peer);

    std::uint64_t length() const noexcept { return length_; }
    const std::string& peer() const noexcept { return peer_; }

    // The payload into `out` (named `name` in errors) from offset 0 by
    // transfer() with `options` (offset and length set here), then checked
    // by a guarded read of `out`.
    TransferStats receive(const File& out, const std::string& name, TransferOptions options);
    // The payload to a stream (a pipe, a terminal) through a buffer,
    // checksummed on the way; progress as TransferOptions::progress. The
    // bytes are written before they are checked: a mismatch is reported
    // after the fact.
    TransferStats receive_to_stream(
        int out_fd, const std::string& name,
        const std::function<void(std::uint64_t done, std::uint64_t total)>& progress = {});

    // Tells the sender the stream arrived whole ("PWOK"); nothing after a refusal.
    void confirm();
    // Tells the sender it failed, and why (best effort: the sender may be
    // gone). Called by receive_* on their own failures.
    void refuse(const Error& why) noexcept;

  private:
    int sock_;
    std::string peer_;
    std::uint32_t version_ = 0;
    std::uint64_t length_ = 0;
    std::uint64_t checksum_ = 0;
    bool answered_ = false;
};

}  // namespace pagewire
