// The listener: notifications reach it, and one whose connection is cut connects
// again, says so (so that its owner looks again), and hears what follows.
#include "cluster/wake_listener.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "cluster/cluster_test_util.h"
#include "store/pg_connection.h"

namespace offload::testing {
namespace {

using std::chrono::milliseconds;

class Heard {
 public:
  void Notified(const std::string& channel, const std::string& payload) {
    std::lock_guard lock(mu_);
    got_.push_back(channel + ":" + payload);
    cv_.notify_all();
  }
  void Reconnected() {
    std::lock_guard lock(mu_);
    ++reconnects_;
    cv_.notify_all();
  }
  // The same, for a short while: a notification sent before LISTEN is never heard.
  bool WaitForWithin(const std::string& what) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, milliseconds(100),
                        [&] { return std::find(got_.begin(), got_.end(), what) != got_.end(); });
  }
  bool WaitForReconnect() {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, milliseconds(10'000), [&] { return reconnects_ > 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> got_;
  int reconnects_ = 0;
};

class WakeListenerTest : public ClusterSchemaTest {
 protected:
  std::unique_ptr<WakeListener> Start(const std::string& app) {
    WakeListenerOptions o;
    o.conninfo = conninfo_ + " application_name=" + app;
    o.channels = {"offload_test_work", "offload_test_done"};
    o.on_notify = [this](const std::string& c, const std::string& p) { heard_.Notified(c, p); };
    o.on_reconnect = [this] { heard_.Reconnected(); };
    o.reconnect_delay = milliseconds(50);
    auto l = WakeListener::Start(std::move(o));
    EXPECT_TRUE(l.has_value()) << l.error().detail;
    return l ? std::move(*l) : nullptr;
  }
  // Notifies until the listener hears it: it may not be LISTENing yet.
  void NotifyUntilHeard(const std::string& channel, const std::string& payload) {
    for (int i = 0; i < 100; ++i) {
      ASSERT_TRUE(Notify(*conn_, channel, payload).has_value());
      if (heard_.WaitForWithin(channel + ":" + payload)) return;
    }
    ADD_FAILURE() << channel << ":" << payload << " was never heard";
  }
  Heard heard_;
};

TEST_F(WakeListenerTest, ANotificationReachesTheListenerWithItsPayload) {
  auto listener = Start("offload_listener_a");
  ASSERT_TRUE(listener);
  NotifyUntilHeard("offload_test_done", "job-1,job-2");
  NotifyUntilHeard("offload_test_work", "");
}

TEST_F(WakeListenerTest, ACutListenerConnectsAgainAndSaysSo) {
  const std::string app = "offload_listener_" + std::to_string(::getpid());
  auto listener = Start(app);
  ASSERT_TRUE(listener);
  NotifyUntilHeard("offload_test_work", "before");
  const std::string cut =
      Sql(conninfo_,
          "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = '" + app + "'");
  ASSERT_EQ(cut, "1");
  ASSERT_TRUE(heard_.WaitForReconnect());
  NotifyUntilHeard("offload_test_work", "after");
}

TEST(WakeListenerOptionsTest, AChannelMustBeAPlainIdentifier) {
  WakeListenerOptions o;
  o.conninfo = "host=127.0.0.1 port=1";
  o.channels = {"work; DROP TABLE x"};
  auto l = WakeListener::Start(std::move(o));
  ASSERT_FALSE(l.has_value());
  EXPECT_EQ(l.error().code, ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace offload::testing
