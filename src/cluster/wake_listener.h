// WakeListener: LISTEN on PostgreSQL channels, on a connection and a thread of its
// own, so that a node hears at once of work another node queued or of a job another
// node finished, instead of polling the tables hard.
//
// A notification is a hint, never the truth: whoever gets one reads the tables. So a
// lost one costs only time, and the callers keep a slow poll as well. A listener whose
// connection is lost (a restart of PostgreSQL, a pg_terminate_backend) connects again,
// LISTENs again and calls on_reconnect, since whatever was sent meanwhile is gone: its
// owner then re-checks what it waits for. Notifications are delivered by PostgreSQL
// only after the sending transaction commits; Notify sends its own, outside any
// insert's, so that no write waits on NOTIFY's commit-time lock.
//
// Threads: one listener thread runs the callbacks; Start, the destructor and
// listening() may be called from any thread.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "util/error.h"

namespace offload {

class PgConnection;

struct WakeListenerOptions {
  std::string conninfo;
  std::vector<std::string> channels;  // Plain identifiers: letters, digits, '_'.
  std::function<void(const std::string& channel, const std::string& payload)> on_notify;
  std::function<void()> on_reconnect;
  Millis reconnect_delay{500};  // Between attempts while PostgreSQL cannot be reached.
};

// Thread-safe. Owns the listener thread and its connection.
class WakeListener {
 public:
  // Starts the thread, which connects and LISTENs; kInvalidArgument for a channel
  // name that is not a plain identifier.
  static ErrorOr<std::unique_ptr<WakeListener>> Start(WakeListenerOptions options);
  ~WakeListener();
  WakeListener(const WakeListener&) = delete;
  WakeListener& operator=(const WakeListener&) = delete;

  // Whether the channels are LISTENed to now.
  bool listening() const { return listening_.load(std::memory_order_acquire); }

 private:
  WakeListener(WakeListenerOptions options, int stop_read, int stop_write);
  void Loop();
  // Connects and LISTENs; null when that failed. Listener thread only.
  std::unique_ptr<PgConnection> Listen();

  // Constant after construction.
  const WakeListenerOptions options_;
  const int stop_read_;  // A pipe whose write end wakes the thread to stop.
  const int stop_write_;

  std::atomic<bool> listening_{false};
  std::atomic<bool> stopping_{false};
  std::thread thread_;  // Started last.
};

// Sends `payload` on `channel` (pg_notify, in a transaction of its own).
Status Notify(PgConnection& conn, const std::string& channel, const std::string& payload = "");

}  // namespace offload
