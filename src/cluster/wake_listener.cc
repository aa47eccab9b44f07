#include "cluster/wake_listener.h"

#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "store/pg_connection.h"

namespace offload {

namespace {

bool PlainIdentifier(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  for (char c : s) {
    if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  }
  return !(s[0] >= '0' && s[0] <= '9');
}

}  // namespace

ErrorOr<std::unique_ptr<WakeListener>> WakeListener::Start(WakeListenerOptions options) {
  for (const std::string& c : options.channels) {
    if (!PlainIdentifier(c)) {
      return MakeError(ErrorCode::kInvalidArgument,
                       "channel \"" + c + "\" is not a plain identifier (a-z, 0-9, _; at most 63)");
    }
  }
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
    return MakeError(ErrorCode::kUnavailable, std::string("pipe: ") + std::strerror(errno));
  }
  return std::unique_ptr<WakeListener>(new WakeListener(std::move(options), fds[0], fds[1]));
}

WakeListener::WakeListener(WakeListenerOptions options, int stop_read, int stop_write)
    : options_(std::move(options)), stop_read_(stop_read), stop_write_(stop_write) {
  thread_ = std::thread([this] { Loop(); });
}

WakeListener::~WakeListener() {
  stopping_.store(true, std::memory_order_release);
  const char byte = 1;
  (void)!::write(stop_write_, &byte, 1);
  thread_.join();
  ::close(stop_read_);
  ::close(stop_write_);
}

std::unique_ptr<PgConnection> WakeListener::Listen() {
  auto conn = PgConnection::Connect(options_.conninfo);
  if (!conn) return nullptr;
  std::string sql;
  for (const std::string& c : options_.channels) sql += "LISTEN " + c + ";";
  if (Status s = (*conn)->ExecScript(sql); !s) return nullptr;
  return std::move(*conn);
}

void WakeListener::Loop() {
  bool ever = false;
  while (!stopping_.load(std::memory_order_acquire)) {
    std::unique_ptr<PgConnection> conn = Listen();
    if (!conn) {
      // Wait before the next attempt, or until told to stop.
      pollfd p{stop_read_, POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(options_.reconnect_delay.count()));
      continue;
    }
    listening_.store(true, std::memory_order_release);
    // What was sent while no one listened is gone: the owner looks again.
    if (ever && options_.on_reconnect) options_.on_reconnect();
    ever = true;
    // Some may have come with the answer to LISTEN, already read.
    for (auto& [channel, payload] : conn->TakeNotifications()) {
      if (options_.on_notify) options_.on_notify(channel, payload);
    }
    while (!stopping_.load(std::memory_order_acquire)) {
      pollfd p[2] = {{conn->socket(), POLLIN, 0}, {stop_read_, POLLIN, 0}};
      const int n = ::poll(p, 2, -1);
      if (n < 0 && errno != EINTR) break;
      if (p[1].revents) break;
      if (!p[0].revents) continue;
      if (!conn->ReadInput()) {
        spdlog::warn("cluster: the listener lost its connection to PostgreSQL; connecting again");
        break;
      }
      for (auto& [channel, payload] : conn->TakeNotifications()) {
        if (options_.on_notify) options_.on_notify(channel, payload);
      }
    }
    listening_.store(false, std::memory_order_release);
  }
}

Status Notify(PgConnection& conn, const std::string& channel, const std::string& payload) {
  auto res = conn.Exec("SELECT pg_notify($1, $2)", PgParams().Text(channel).Text(payload));
  if (!res) return res.error();
  return {};
}

}  // namespace offload
