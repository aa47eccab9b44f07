#include "closed_loop.h"

#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <thread>
#include <vector>

namespace offload::bench {

namespace asio = boost::asio;

namespace {

// The state of one loop; lives on the loop's thread.
class Loop {
 public:
  Loop(const Target& target, int connections, Clock::time_point deadline, Workload& workload)
      : io_(1), deadline_(deadline), workload_(workload), guard_(io_) {
    for (int i = 0; i < connections; ++i) {
      slots_.push_back(std::make_unique<Slot>());
      slots_.back()->conn = std::make_shared<Connection>(io_, target.endpoint, target.header_lines);
    }
  }

  LoopTimes Run() {
    // Connect first, so that the figures do not include the handshakes.
    int pending = static_cast<int>(slots_.size());
    for (auto& s : slots_) {
      s->conn->Connect(std::chrono::seconds(10), [this, &pending](boost::system::error_code ec) {
        if (ec) ++times_.connect_errors;
        if (--pending == 0) StartAll();
      });
    }
    // Absolute bound: whatever happens, the loop ends shortly after the deadline
    // plus the longest request timeout.
    guard_.expires_at(deadline_);
    guard_.async_wait([this](boost::system::error_code ec) {
      // The loop may have finished after the timer expired but before this ran.
      if (ec || finished_) return;
      guard_.expires_after(longest_timeout_ + std::chrono::seconds(5));
      guard_.async_wait([this](boost::system::error_code ec2) {
        if (!ec2) io_.stop();
      });
    });
    io_.run();
    return times_;
  }

 private:
  void StartAll() {
    for (auto& s : slots_) SendNext(s.get());
    MaybeFinish();
  }

  // One connection and the request it carries: reused, so that a request costs no
  // allocation here.
  struct Slot {
    std::shared_ptr<Connection> conn;
    Request request;
    Clock::time_point sent;
  };

  void SendNext(Slot* slot) {
    if (Clock::now() >= deadline_) return;
    if (!workload_.Next(&slot->request)) {
      idle_.push_back(slot);
      return;
    }
    longest_timeout_ = std::max(longest_timeout_, slot->request.timeout);
    ++in_flight_;
    slot->sent = Clock::now();
    if (times_.first_send == Clock::time_point{}) times_.first_send = slot->sent;
    const Request& r = slot->request;
    slot->conn->Send(r.method, r.target, r.body, r.timeout, r.prefer,
                     [this, slot](Reply&& reply) { OnReply(slot, std::move(reply)); });
  }

  void OnReply(Slot* slot, Reply&& reply) {
    const auto now = Clock::now();
    times_.last_reply = now;
    --in_flight_;
    workload_.OnReply(slot->request, std::move(reply), (now - slot->sent).count());
    SendNext(slot);
    // The answer may have made work for connections that found none.
    while (!idle_.empty() && Clock::now() < deadline_) {
      Slot* other = idle_.back();
      idle_.pop_back();
      const std::size_t before = idle_.size();
      SendNext(other);
      if (idle_.size() > before) break;  // Still nothing to send.
    }
    MaybeFinish();
  }

  void MaybeFinish() {
    if (in_flight_ == 0) {
      finished_ = true;
      guard_.cancel();
      for (auto& s : slots_) s->conn->Close();
    }
  }

  asio::io_context io_;
  const Clock::time_point deadline_;
  Workload& workload_;
  asio::steady_timer guard_;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::vector<Slot*> idle_;
  std::int64_t in_flight_ = 0;
  bool finished_ = false;
  std::chrono::milliseconds longest_timeout_{0};
  LoopTimes times_;
};

class OneShot final : public Workload {
 public:
  OneShot(Request r) : request_(std::move(r)) {}
  bool Next(Request* r) override {
    if (sent_) return false;
    sent_ = true;
    *r = request_;
    return true;
  }
  void OnReply(const Request&, Reply&& reply, std::int64_t) override { reply_ = std::move(reply); }
  Reply reply_{boost::asio::error::timed_out, 0, {}};

 private:
  Request request_;
  bool sent_ = false;
};

}  // namespace

LoopTimes RunClosedLoop(const Target& target, int connections, Clock::time_point deadline, Workload& workload) {
  Loop loop(target, connections, deadline, workload);
  return loop.Run();
}

void RunOnThreads(unsigned threads, const std::function<void(unsigned)>& body) {
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < threads; ++i) pool.emplace_back(body, i);
  body(0);
  for (auto& t : pool) t.join();
}

Reply FetchOnce(const Target& target, boost::beast::http::verb method, const std::string& path, std::string_view body,
                std::chrono::milliseconds timeout) {
  Request r;
  r.method = method;
  r.target = path;
  r.body = body;
  r.timeout = timeout;
  OneShot shot(std::move(r));
  RunClosedLoop(target, 1, Clock::now() + timeout, shot);
  return std::move(shot.reply_);
}

}  // namespace offload::bench
