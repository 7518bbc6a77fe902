// pagewire serve: HTTP dates (RFC 9110 5.6.7) and the per-second clock
// strings a worker reuses for every response (nginx's ngx_cached_http_time).
#pragma once

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>

namespace pagewire::http {

// "Sat, 21 Nov 2026 10:00:00 GMT"
std::string format_http_date(std::time_t t);
// IMF-fixdate, RFC 850 or asctime form (via strptime); nullopt if none fits.
std::optional<std::time_t> parse_http_date(std::string_view text);

// The Date header value and the access log's time, recomputed only when
// the second changes. One per worker; not thread-safe.
class ClockStrings {
  public:
    // Reads the clocks; call once per event-loop iteration.
    void update();
    std::uint64_t now_ms() const noexcept { return now_ms_; }  // CLOCK_MONOTONIC
    std::time_t now() const noexcept { return second_; }       // wall clock
    const std::string& http_date() const noexcept { return http_date_; }
    const std::string& log_time() const noexcept {
        return log_time_;
    }  // 21/Nov/2026:10:00:00 +0000

  private:
    std::uint64_t now_ms_ = 0;
    std::time_t second_ = -1;
    std::string http_date_;
    std::string log_time_;
};

}  // namespace pagewire::http
