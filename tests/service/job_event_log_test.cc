#include "service/job_event_log.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace offload {
namespace {

using ReadResult = JobEventLog::ReadResult;

JobEvent Event(const std::string& id, const std::string& task = "t") { return JobEvent{id, task, "status", "{}"}; }

// The ids of the jobs of the events a Read gives, and what it returned.
std::pair<ReadResult, std::vector<std::string>> ReadAll(JobEventLog& log, JobEventLog::Subscription* sub) {
  std::vector<KeptEventPtr> read;
  const ReadResult r = log.Read(sub, 1000, &read);
  std::vector<std::string> jobs;
  for (const KeptEventPtr& e : read) jobs.push_back(e->event.job_id);
  return {r, jobs};
}

TEST(JobEventLogTest, NothingIsKeptUntilSomebodySubscribes) {
  auto log = JobEventLog::Create(16, std::chrono::milliseconds(0));
  EXPECT_FALSE(log->wanted());
  log->Publish(Event("before"));
  auto sub = log->Subscribe({}, "");
  EXPECT_TRUE(log->wanted());
  log->Publish(Event("after"));
  auto [r, jobs] = ReadAll(*log, sub.get());
  EXPECT_EQ(r, ReadResult::kSome);
  EXPECT_EQ(jobs, std::vector<std::string>{"after"});
  EXPECT_EQ(ReadAll(*log, sub.get()).first, ReadResult::kNone);
}

TEST(JobEventLogTest, AnEmptyReadArmsOneWakeAndTheFilterChoosesWhatWakes) {
  auto log = JobEventLog::Create(16, std::chrono::milliseconds(0));
  auto sub = log->Subscribe(JobEventFilter{"", "mine"}, "");
  int wakes = 0;
  sub->SetWake([&] { ++wakes; });
  log->Publish(Event("a", "mine"));
  EXPECT_EQ(wakes, 0) << "not armed before a Read found nothing";
  EXPECT_EQ(ReadAll(*log, sub.get()).second, std::vector<std::string>{"a"});
  EXPECT_EQ(ReadAll(*log, sub.get()).first, ReadResult::kNone);
  log->Publish(Event("b", "other"));
  EXPECT_EQ(wakes, 0);
  log->Publish(Event("c", "mine"));
  log->Publish(Event("d", "mine"));
  EXPECT_EQ(wakes, 1);
  EXPECT_EQ(ReadAll(*log, sub.get()).second, (std::vector<std::string>{"c", "d"}));
}

TEST(JobEventLogTest, ASubscriberFurtherBehindThanTheRingHasLostEvents) {
  auto log = JobEventLog::Create(4, std::chrono::milliseconds(0));
  auto slow = log->Subscribe({}, "");
  for (int i = 0; i < 5; ++i) log->Publish(Event("j" + std::to_string(i)));
  EXPECT_EQ(ReadAll(*log, slow.get()).first, ReadResult::kLost);
  auto fresh = log->Subscribe({}, "");
  log->Publish(Event("next"));
  EXPECT_EQ(ReadAll(*log, fresh.get()).second, std::vector<std::string>{"next"});
}

TEST(JobEventLogTest, EventsAFilterDoesNotWantNeverMakeItFallBehind) {
  auto log = JobEventLog::Create(4, std::chrono::milliseconds(0));
  auto quiet = log->Subscribe(JobEventFilter{"", "rare"}, "");
  EXPECT_EQ(ReadAll(*log, quiet.get()).first, ReadResult::kNone);
  for (int i = 0; i < 10; ++i) log->Publish(Event("busy" + std::to_string(i), "busy"));
  log->Publish(Event("wanted", "rare"));
  auto [r, jobs] = ReadAll(*log, quiet.get());
  EXPECT_EQ(r, ReadResult::kSome);
  EXPECT_EQ(jobs, std::vector<std::string>{"wanted"});
}

TEST(JobEventLogTest, AResumeReadsOnFromItsIdAndOnlyFromThisLogsIds) {
  auto log = JobEventLog::Create(16, std::chrono::milliseconds(60'000));
  std::string last;
  {
    auto sub = log->Subscribe({}, "");
    log->Publish(Event("a"));
    std::vector<KeptEventPtr> read;
    log->Read(sub.get(), 1000, &read);
    last = read.back()->id;
  }
  // Nobody subscribed, but within the linger: kept.
  log->Publish(Event("b"));
  auto resumed = log->Subscribe({}, last);
  EXPECT_TRUE(resumed->resumed());
  EXPECT_EQ(ReadAll(*log, resumed.get()).second, std::vector<std::string>{"b"});

  auto foreign = log->Subscribe({}, "deadbeef-1");
  EXPECT_FALSE(foreign->resumed());
  auto garbage = log->Subscribe({}, last + "x");
  EXPECT_FALSE(garbage->resumed());
}

TEST(JobEventLogTest, AGapInRecordingIsNeverReadAsContinuous) {
  auto log = JobEventLog::Create(16, std::chrono::milliseconds(0));
  std::string last;
  {
    auto sub = log->Subscribe({}, "");
    log->Publish(Event("a"));
    std::vector<KeptEventPtr> read;
    log->Read(sub.get(), 1000, &read);
    last = read.back()->id;
  }
  // No linger: this stops the recording, and "unseen" is lost.
  log->Publish(Event("unseen"));
  EXPECT_FALSE(log->wanted());
  auto again = log->Subscribe({}, last);
  EXPECT_FALSE(again->resumed()) << "events went unrecorded after " << last;
}

TEST(JobEventLogTest, ALatestStatesReaderPassesOverWhatALaterEventSupersedes) {
  auto log = JobEventLog::Create(16, std::chrono::milliseconds(0));
  auto every = log->Subscribe({}, "");
  auto latest = log->Subscribe(JobEventFilter{"", "", true}, "");
  for (const char* id : {"a", "b", "a", "c", "a"}) log->Publish(Event(id));
  EXPECT_EQ(ReadAll(*log, every.get()).second, (std::vector<std::string>{"a", "b", "a", "c", "a"}));
  EXPECT_EQ(ReadAll(*log, latest.get()).second, (std::vector<std::string>{"b", "c", "a"}));
  // What a later Read finds is folded only with what it finds: "b" was sent already.
  log->Publish(Event("b"));
  log->Publish(Event("d"));
  EXPECT_EQ(ReadAll(*log, latest.get()).second, (std::vector<std::string>{"b", "d"}));
}

TEST(JobEventLogTest, ALatestStatesReadCutShortSendsTheRestNextAndEndsOnTheLastId) {
  auto log = JobEventLog::Create(16, std::chrono::milliseconds(0));
  auto latest = log->Subscribe(JobEventFilter{"", "", true}, "");
  for (const char* id : {"a", "b", "a", "c"}) log->Publish(Event(id));
  std::vector<KeptEventPtr> read;
  EXPECT_EQ(log->Read(latest.get(), 1, &read), ReadResult::kSome);
  EXPECT_EQ(log->Read(latest.get(), 1, &read), ReadResult::kSome);
  EXPECT_EQ(log->Read(latest.get(), 1, &read), ReadResult::kSome);
  EXPECT_EQ(log->Read(latest.get(), 1, &read), ReadResult::kNone);
  ASSERT_EQ(read.size(), 3u);
  EXPECT_EQ(read[0]->event.job_id, "b");
  EXPECT_EQ(read[1]->event.job_id, "a");
  EXPECT_EQ(read[2]->event.job_id, "c");
  EXPECT_EQ(read[2]->id, log->IdOf(4)) << "the last event published is always sent";
}

TEST(JobEventLogTest, WhatSupersedesWhatHoldsAsTheRingTurns) {
  auto log = JobEventLog::Create(3, std::chrono::milliseconds(0));
  auto keeps_recording = log->Subscribe({}, "");
  for (int round = 0; round < 5; ++round) {
    // Each round leaves the ring holding a, b, a: the first a superseded, and the
    // a of the round before dropped off its front.
    for (const char* id : {"a", "b", "a"}) log->Publish(Event(id));
    auto fresh = log->Subscribe(JobEventFilter{"", "", true}, "");
    // From the start of the ring (a resume from the event before it).
    auto resumed = log->Subscribe(JobEventFilter{"", "", true}, log->IdOf(3 * round));
    ASSERT_TRUE(resumed->resumed()) << round;
    EXPECT_EQ(ReadAll(*log, resumed.get()).second, (std::vector<std::string>{"b", "a"})) << round;
    EXPECT_EQ(ReadAll(*log, fresh.get()).first, ReadResult::kNone);
  }
}

TEST(JobEventLogTest, CloseEndsAndWakesEverySubscription) {
  auto log = JobEventLog::Create(16, std::chrono::milliseconds(0));
  auto sub = log->Subscribe({}, "");
  int wakes = 0;
  sub->SetWake([&] { ++wakes; });
  log->Close();
  EXPECT_EQ(wakes, 1);
  EXPECT_EQ(ReadAll(*log, sub.get()).first, ReadResult::kClosed);
}

}  // namespace
}  // namespace offload
