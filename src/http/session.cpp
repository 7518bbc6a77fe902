// HTTP on the network core: see session.hpp.
#include "http/session.hpp"

#include "http/access_log.hpp"

namespace pagewire::http {
namespace {

class HttpSession final : public net::Session {
  public:
    explicit HttpSession(HttpProtocol& protocol) noexcept : protocol_(protocol) {}

    void start(net::Link& link) override {
        link_ = &link;
        reader_.reset();
        response_.clear();
    }

    net::Input on_input(const char* data, std::size_t size, bool stopping) override {
        const ParseResult r = reader_.parse(data, size, request_);
        net::Input in;
        if (r.kind == ParseResult::Kind::Ready) {
            protocol_.responder().respond(request_, response_, !stopping);
            in.kind = net::Input::Kind::Respond;
        } else if (r.kind == ParseResult::Kind::Error) {
            protocol_.responder().respond_error(r.status, r.status == 405 ? &request_ : nullptr,
                                                response_);
            in.kind = net::Input::Kind::Error;
        } else {
            return in;
        }
        reader_.reset();
        in.consumed = r.consumed;
        in.response = &response_;
        return in;
    }

    net::Response* on_input_limit(net::InputLimit why) override {
        reader_.reset();
        protocol_.responder().respond_error(why == net::InputLimit::Timeout ? 408 : 400, nullptr,
                                            response_);
        return &response_;
    }

    net::Response* on_resume(bool) override { return nullptr; }  // never deferred

    void on_sent(net::Response&, std::uint64_t body_sent, bool) override {
        protocol_.log(link_->client(), response_, body_sent);
        response_.file.reset();  // the cache may close it when it is evicted
    }

    void on_close() noexcept override {
        reader_.reset();
        response_.clear();
        link_ = nullptr;
    }

  private:
    HttpProtocol& protocol_;
    net::Link* link_ = nullptr;
    RequestReader reader_;
    Request request_;    // views into the core's input buffer, valid during on_input
    Response response_;  // the one answer in flight
};

}  // namespace

HttpProtocol::HttpProtocol(const serve::ServeConfig& config, int root_fd,
                           net::WorkerContext& context)
    : cache_(root_fd, config.follow_symlinks, config.open_file_valid_ms),
      responder_(config, cache_, clock_),
      log_(context.access_log()) {
    clock_.update();
}

std::unique_ptr<net::Session> HttpProtocol::make_session() {
    return std::make_unique<HttpSession>(*this);
}

const net::Response* HttpProtocol::over_limit(std::string_view client) {
    responder_.respond_error(503, nullptr, rejected_);
    log(client, rejected_, rejected_.body_bytes);
    return &rejected_;
}

void HttpProtocol::log(std::string_view client, const Response& response, std::uint64_t body_sent) {
    if (!log_.enabled()) return;
    append_log_line(log_.buffer(), client, clock_.log_time(), response.log_request, response.status,
                    body_sent, response.log_referer, response.log_user_agent);
}

}  // namespace pagewire::http
