// pagewire serve: HTTP/1.x as a protocol of the network core (net/). One
// HttpProtocol per worker holds what the worker's requests share (clock
// strings, open-file cache, responder, the access log); one HttpSession per
// connection reads request heads (RequestReader) and answers each with the
// Responder, one at a time, in order. HTTP never defers a response. Not
// thread-safe: everything runs on its worker's thread.
#pragma once

#include <cstdint>
#include <memory>
#include <pagewire/serve.hpp>
#include <string_view>

#include "http/file_cache.hpp"
#include "http/http_date.hpp"
#include "http/http_request.hpp"
#include "http/response.hpp"
#include "net/access_log.hpp"
#include "net/protocol.hpp"

namespace pagewire::http {

// Request line and header section at their limits, plus room for the
// framing to see that they are over (then 400).
inline constexpr std::size_t kMaxRequestHeadBytes =
    kMaxRequestLineBytes + kMaxHeaderSectionBytes + 1024;

class HttpProtocol final : public net::Protocol {
  public:
    // `config` and `root_fd` outlive the protocol.
    HttpProtocol(const serve::ServeConfig& config, int root_fd, net::WorkerContext& context);

    std::unique_ptr<net::Session> make_session() override;
    void on_turn() override { clock_.update(); }
    const net::Response* over_limit(std::string_view client) override;

    Responder& responder() noexcept { return responder_; }
    // One access-log line for a response of which body_sent bytes went out.
    void log(std::string_view client, const Response& response, std::uint64_t body_sent);

  private:
    ClockStrings clock_;
    OpenFileCache cache_;
    Responder responder_;
    net::AccessLog& log_;
    Response rejected_;  // the 503 of over_limit()
};

}  // namespace pagewire::http
