// The Store conformance suite: every implementation must pass every test here. To
// add an implementation, add a factory to kStoreFactories.
#include "store/store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "store/sqlite_store.h"
#include "support/postgres_schema.h"
#include "util/json_writer.h"

namespace offload {
namespace {

namespace json = boost::json;

struct StoreFactory {
  std::string name;
  // Opens a fresh, empty store.
  std::function<ErrorOr<std::unique_ptr<Store>>()> open;
};

// Fresh folders for SQLite databases, removed when the test program exits.
class ScratchDirs {
 public:
  ~ScratchDirs() {
    for (const auto& d : dirs_) std::filesystem::remove_all(d);
  }
  std::string Make() {
    std::string tmpl = std::filesystem::temp_directory_path().string() + "/offload-store-XXXXXX";
    dirs_.push_back(mkdtemp(tmpl.data()));
    return dirs_.back();
  }

 private:
  std::vector<std::string> dirs_;
};

const std::vector<StoreFactory>& StoreFactories() {
  static ScratchDirs scratch;
  static const std::vector<StoreFactory> factories = [] {
    std::vector<StoreFactory> f = {
        {"memory", [] { return OpenStore("memory"); }},
        // synchronous=NORMAL: the suite checks behaviour, not sync to disk.
        {"sqlite",
         [] {
           return OpenStore(StoreOptions{"sqlite:" + scratch.Make() + "/jobs.db", false});
         }},
    };
    // Each test in a schema of its own on the test server (support/postgres_schema.h).
    f.push_back({"postgres", []() -> ErrorOr<std::unique_ptr<Store>> {
                   auto conninfo = testing::TestPostgresConnInfo();
                   if (!conninfo) return MakeError(ErrorCode::kUnavailable, "no PostgreSQL test server");
                   return OpenStore("postgres:" + testing::FreshPostgresSchema(*conninfo));
                 }});
    return f;
  }();
  return factories;
}

void PrintTo(const StoreFactory& f, std::ostream* os) { *os << f.name; }

constexpr UnixMillis kT0 = 1'700'000'000'000;

JobRecord MakeJob(std::uint64_t seq, const std::string& task = "sleep", JobStatus status = JobStatus::kQueued) {
  JobRecord r;
  r.id = "job-" + std::to_string(seq);
  r.task = task;
  r.status = status;
  r.seq = seq;
  r.priority = static_cast<int>(seq % 3);
  r.input = std::make_shared<const json::value>(json::object{{"ms", seq}});
  r.created_at = kT0 + static_cast<UnixMillis>(seq);
  if (status != JobStatus::kQueued) {
    r.started_at = r.created_at + 1;
    r.attempts = 1;
  }
  if (IsFinished(status)) r.finished_at = r.created_at + 2;
  return r;
}

class StoreTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override {
    auto s = GetParam().open();
    ASSERT_TRUE(s.has_value()) << s.error().detail;
    store_ = std::move(*s);
  }

  void Insert(const JobRecord& r) {
    auto ok = store_->Insert(r);
    ASSERT_TRUE(ok.has_value()) << r.id << ": " << ok.error().detail;
  }
  std::optional<JobRecord> Get(const std::string& id) {
    auto r = store_->Get(id);
    EXPECT_TRUE(r.has_value()) << id;
    return r ? *r : std::nullopt;
  }
  JobPage List(const JobQuery& q) {
    auto page = store_->List(q);
    EXPECT_TRUE(page.has_value());
    return page ? *page : JobPage{};
  }
  static std::vector<std::uint64_t> Seqs(const JobPage& page) {
    std::vector<std::uint64_t> out;
    for (const auto& j : page.jobs) out.push_back(j.seq);
    return out;
  }
  // Follows the cursor to the end, checking each page; returns all seqs in order.
  std::vector<std::uint64_t> ListAllPages(JobQuery q) {
    std::vector<std::uint64_t> all;
    for (int page = 0; page < 1000; ++page) {
      JobPage p = List(q);
      EXPECT_LE(p.jobs.size(), q.limit);
      for (auto s : Seqs(p)) all.push_back(s);
      if (!p.next_before_seq) return all;
      EXPECT_FALSE(p.jobs.empty()) << "a page with a cursor must make progress";
      EXPECT_LT(*p.next_before_seq, q.before_seq) << "the cursor must move backwards";
      q.before_seq = *p.next_before_seq;
    }
    ADD_FAILURE() << "pagination did not end";
    return all;
  }

  std::unique_ptr<Store> store_;
};

void ExpectSameRecord(const JobRecord& a, const JobRecord& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.task, b.task);
  EXPECT_EQ(a.status, b.status);
  EXPECT_EQ(a.priority, b.priority);
  EXPECT_EQ(a.seq, b.seq);
  EXPECT_EQ(a.attempts, b.attempts);
  ASSERT_EQ(a.input == nullptr, b.input == nullptr);
  if (a.input) {
    EXPECT_EQ(*a.input, *b.input);
  }
  EXPECT_EQ(a.created_at, b.created_at);
  EXPECT_EQ(a.started_at, b.started_at);
  EXPECT_EQ(a.finished_at, b.finished_at);
  ASSERT_EQ(a.result == nullptr, b.result == nullptr);
  if (a.result) {
    EXPECT_EQ(a.result->content_type, b.result->content_type);
    EXPECT_EQ(a.result->json, b.result->json);
    EXPECT_EQ(a.result->bytes, b.result->bytes);
  }
  ASSERT_EQ(a.error.has_value(), b.error.has_value());
  if (a.error) {
    EXPECT_EQ(a.error->type, b.error->type);
    EXPECT_EQ(a.error->message, b.error->message);
    EXPECT_EQ(a.error->detail, b.error->detail);
  }
  EXPECT_EQ(a.progress, b.progress);
}

TEST_P(StoreTest, InsertThenGetReturnsTheSameRecord) {
  JobRecord r = MakeJob(1);
  r.priority = -7;
  r.input = std::make_shared<const json::value>(
      json::parse(R"({"nested": {"list": [1, 2.5, "three", null, true]}, "unicode": "é✓"})"));
  Insert(r);
  auto got = Get(r.id);
  ASSERT_TRUE(got.has_value());
  ExpectSameRecord(*got, r);
}

// Numbers come back as written: same kind (an integral double stays a double), same
// value to the last bit, -0.0 keeps its sign. For SQLite, Get reads the row's JSON
// text as a restart does.
TEST_P(StoreTest, NumbersRoundTripExactly) {
  const json::array numbers{0.1,
                            2.5,
                            1,
                            1.0,
                            -0.0,
                            1e300,
                            5e-324,
                            0.30000000000000004,
                            18446744073709551616.0,
                            std::numeric_limits<std::int64_t>::max(),
                            std::numeric_limits<std::int64_t>::min(),
                            std::numeric_limits<std::uint64_t>::max()};
  JobRecord r = MakeJob(1, "cpu", JobStatus::kSucceeded);
  r.input = std::make_shared<const json::value>(json::object{{"n", numbers}});
  r.result = Result::Json(json::object{{"n", numbers}}).output();
  Insert(r);
  auto got = Get(r.id);
  ASSERT_TRUE(got.has_value());
  ExpectSameRecord(*got, r);
  for (const json::value* v : {&got->input->at("n"), &got->result->json.at("n")}) {
    const json::array& a = v->as_array();
    ASSERT_EQ(a.size(), numbers.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].kind(), numbers[i].kind()) << i;
      EXPECT_EQ(a[i], numbers[i]) << i;
    }
    EXPECT_TRUE(std::signbit(a[4].as_double())) << "-0.0 lost its sign";
  }
}

// A double a handler made that JSON cannot hold (inf, NaN) is written as null (a store
// that keeps values may keep it, and the API writes it as null); the rest of the
// result is kept.
TEST_P(StoreTest, ANonFiniteNumberInAResultIsNullAndTheRestIsKept) {
  JobRecord r = MakeJob(1, "cpu", JobStatus::kSucceeded);
  r.result =
      Result::Json(json::object{{"inf", std::numeric_limits<double>::infinity()}, {"nan", std::nan("")}, {"ok", 2.5}})
          .output();
  Insert(r);
  auto got = Get(r.id);
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(got->result);
  ASSERT_TRUE(got->result->json.is_object()) << "the whole result was lost";
  EXPECT_EQ(WriteJson(got->result->json), R"({"inf":null,"nan":null,"ok":2.5})");
}

TEST_P(StoreTest, GetOfAnUnknownIdIsEmptyNotAnError) {
  auto r = store_->Get("nope");
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->has_value());
}

TEST_P(StoreTest, FinishedRecordsKeepResultsErrorsAndProgress) {
  JobRecord ok = MakeJob(1, "cpu", JobStatus::kSucceeded);
  ok.result = Result::Json(json::object{{"rounds", 12}}).output();
  ok.progress = 1.0;
  JobRecord png = MakeJob(2, "mandelbrot", JobStatus::kSucceeded);
  png.result = Result::Bytes("image/png", std::string("\x89PNG\r\n\x1a\n\0binary", 15)).output();
  JobRecord failed = MakeJob(3, "sleep", JobStatus::kFailed);
  failed.error =
      JobError{"handler_error", "ValueError: no", "Traceback (most recent call last):\n  ...\nValueError: no"};
  failed.progress = 0.5;
  JobRecord canceled = MakeJob(4, "sleep", JobStatus::kCanceled);
  canceled.error = JobError{"canceled", "canceled by a DELETE request"};
  canceled.input = std::make_shared<const json::value>(nullptr);
  for (const JobRecord* r : {&ok, &png, &failed, &canceled}) {
    Insert(*r);
    auto got = Get(r->id);
    ASSERT_TRUE(got.has_value()) << r->id;
    SCOPED_TRACE(r->id);
    ExpectSameRecord(*got, *r);
  }
}

// What a store keeps of files is what they are; the bytes live in files_dir, and the
// store names the jobs whose files retention must remove with them.
TEST_P(StoreTest, FilesAndFileResultsAreKeptAndNamedForRetention) {
  JobRecord upload = MakeJob(1, "thumb", JobStatus::kSucceeded);
  upload.files = {JobFile{"body", "cat.png", "image/png", 70'000, std::string(64, 'a'), {}}};
  upload.result = Result::Bytes("image/png", "small").output();
  JobRecord big = MakeJob(2, "render", JobStatus::kSucceeded);
  auto out = std::make_shared<Output>();
  out->content_type = "video/mp4";
  out->file = OutputFile{{}, 3'000'000'000, std::string(64, 'f')};
  big.result = out;
  JobRecord plain = MakeJob(3, "cpu", JobStatus::kSucceeded);
  plain.result = Result::Json(1).output();
  JobRecord waiting = MakeJob(4, "thumb", JobStatus::kQueued);
  waiting.files = upload.files;
  for (const JobRecord* r : {&upload, &big, &plain, &waiting}) Insert(*r);
  auto got = Get("job-1");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->files, upload.files);
  got = Get("job-2");
  ASSERT_TRUE(got.has_value() && got->result && got->result->file);
  EXPECT_EQ(got->result->file->size, 3'000'000'000u);
  EXPECT_EQ(got->result->file->sha256, std::string(64, 'f'));
  EXPECT_EQ(got->result->content_type, "video/mp4");
  auto expiring = store_->FinishedWithFilesBefore(kT0 + 1000);
  ASSERT_TRUE(expiring.has_value()) << expiring.error().detail;
  std::sort(expiring->begin(), expiring->end());
  EXPECT_EQ(*expiring, (std::vector<std::string>{"job-1", "job-2"}));
  auto none = store_->FinishedWithFilesBefore(kT0);
  ASSERT_TRUE(none.has_value());
  EXPECT_TRUE(none->empty());
}

TEST_P(StoreTest, DuplicateIdIsAConflict) {
  JobRecord r = MakeJob(1);
  Insert(r);
  JobRecord again = MakeJob(2);
  again.id = r.id;
  auto dup = store_->Insert(again);
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().code, ErrorCode::kConflict);
  auto got = Get(r.id);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->seq, 1u) << "the first record must be kept";
  EXPECT_EQ(List(JobQuery{}).jobs.size(), 1u);
}

TEST_P(StoreTest, ABatchIsAppliedInOrder) {
  JobRecord r = MakeJob(1);
  JobRecord running = r;
  running.status = JobStatus::kRunning;
  running.started_at = kT0 + 5;
  running.attempts = 1;
  JobRecord done = running;
  done.status = JobStatus::kSucceeded;
  done.finished_at = kT0 + 9;
  done.result = Result::Json(json::value("ok")).output();
  JobRecord other = MakeJob(2);
  auto ok = store_->Apply({{StoreOp::Kind::kInsert, r},
                           {StoreOp::Kind::kUpdate, running},
                           {StoreOp::Kind::kInsert, other},
                           {StoreOp::Kind::kUpdate, done}});
  ASSERT_TRUE(ok.has_value()) << ok.error().detail;
  auto got = Get(r.id);
  ASSERT_TRUE(got.has_value());
  ExpectSameRecord(*got, done);
  EXPECT_TRUE(Get(other.id).has_value());
}

TEST_P(StoreTest, ABatchWithABadWriteChangesNothing) {
  Insert(MakeJob(1));
  JobRecord changed = MakeJob(1);
  changed.status = JobStatus::kRunning;
  changed.attempts = 1;
  // An update of a job no one inserted: the whole batch is refused.
  auto missing = store_->Apply(
      {{StoreOp::Kind::kUpdate, changed}, {StoreOp::Kind::kInsert, MakeJob(2)}, {StoreOp::Kind::kUpdate, MakeJob(9)}});
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  // An insert of an id that exists: refused too.
  auto dup = store_->Apply({{StoreOp::Kind::kInsert, MakeJob(3)}, {StoreOp::Kind::kInsert, MakeJob(1)}});
  ASSERT_FALSE(dup.has_value());
  EXPECT_EQ(dup.error().code, ErrorCode::kConflict);
  auto got = Get("job-1");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->status, JobStatus::kQueued) << "the refused batches' update must not be applied";
  EXPECT_EQ(Seqs(List(JobQuery{})), std::vector<std::uint64_t>({1}));
  // And the store still takes writes.
  Insert(MakeJob(4));
  EXPECT_EQ(Seqs(List(JobQuery{})), std::vector<std::uint64_t>({4, 1}));
}

TEST_P(StoreTest, UpdateReplacesTheRecord) {
  JobRecord r = MakeJob(1);
  Insert(r);
  r.status = JobStatus::kRunning;
  r.started_at = kT0 + 50;
  r.attempts = 1;
  r.progress = 0.3;
  ASSERT_TRUE(store_->Update(r).has_value());
  auto got = Get(r.id);
  ASSERT_TRUE(got.has_value());
  ExpectSameRecord(*got, r);

  r.status = JobStatus::kSucceeded;
  r.finished_at = kT0 + 90;
  r.progress = 1.0;
  r.result = Result::Json(json::array{1, 2, 3}).output();
  ASSERT_TRUE(store_->Update(r).has_value());
  got = Get(r.id);
  ASSERT_TRUE(got.has_value());
  ExpectSameRecord(*got, r);
}

TEST_P(StoreTest, UpdateOfAnUnknownIdIsNotFoundAndCreatesNothing) {
  auto u = store_->Update(MakeJob(9));
  ASSERT_FALSE(u.has_value());
  EXPECT_EQ(u.error().code, ErrorCode::kNotFound);
  auto got = store_->Get("job-9");
  ASSERT_TRUE(got.has_value());
  EXPECT_FALSE(got->has_value());
  EXPECT_TRUE(List(JobQuery{}).jobs.empty());
}

TEST_P(StoreTest, MapSpecRoundTripsThroughInsertAndUpdate) {
  JobRecord parent = MakeJob(1);
  parent.map = MapSpec{.chunk = 7, .collect = true, .failed_index = -1};
  Insert(parent);
  auto got = Get(parent.id);
  ASSERT_TRUE(got.has_value());
  ExpectSameRecord(*got, parent);
  EXPECT_EQ(got->map, parent.map);

  // A fail-fast map that failed at element 3.
  parent.status = JobStatus::kFailed;
  parent.finished_at = kT0 + 40;
  parent.error = JobError{"map_element_failed", "element 3 failed"};
  parent.map->collect = false;
  parent.map->failed_index = 3;
  ASSERT_TRUE(store_->Update(parent).has_value());
  got = Get(parent.id);
  ASSERT_TRUE(got.has_value());
  ExpectSameRecord(*got, parent);
  ASSERT_TRUE(got->map.has_value());
  EXPECT_EQ(got->map->chunk, 7);
  EXPECT_FALSE(got->map->collect);
  EXPECT_EQ(got->map->failed_index, 3);
}

TEST_P(StoreTest, APlainJobHasNoMapSpec) {
  Insert(MakeJob(1));
  auto got = Get("job-1");
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->map, std::nullopt);
  JobPage page = List(JobQuery{});
  ASSERT_EQ(page.jobs.size(), 1u);
  EXPECT_EQ(page.jobs[0].map, std::nullopt);
}

TEST_P(StoreTest, LoadUnfinishedKeepsMapSpec) {
  JobRecord parent = MakeJob(1, "sleep", JobStatus::kRunning);
  parent.map = MapSpec{.chunk = 0, .collect = false, .failed_index = -1};
  Insert(parent);
  Insert(MakeJob(2));
  JobRecord done = MakeJob(3, "sleep", JobStatus::kSucceeded);
  done.map = MapSpec{.chunk = 4, .collect = true, .failed_index = -1};
  Insert(done);
  auto unfinished = store_->LoadUnfinished();
  ASSERT_TRUE(unfinished.has_value()) << unfinished.error().detail;
  ASSERT_EQ(unfinished->size(), 2u);
  EXPECT_EQ((*unfinished)[0].id, "job-1");
  EXPECT_EQ((*unfinished)[0].map, parent.map);
  EXPECT_EQ((*unfinished)[1].id, "job-2");
  EXPECT_EQ((*unfinished)[1].map, std::nullopt);
}

TEST_P(StoreTest, ListIsNewestFirst) {
  for (std::uint64_t s = 1; s <= 5; ++s) Insert(MakeJob(s));
  JobPage page = List(JobQuery{});
  EXPECT_EQ(Seqs(page), (std::vector<std::uint64_t>{5, 4, 3, 2, 1}));
  EXPECT_FALSE(page.next_before_seq.has_value());
  EXPECT_EQ(page.jobs[0].id, "job-5");
  ASSERT_NE(page.jobs[0].input, nullptr);
  EXPECT_EQ(*page.jobs[0].input, (json::object{{"ms", 5}}));
}

// A listing leaves results out unless asked (a disk store does not even read them),
// and never inlines bytes; Get still returns everything.
TEST_P(StoreTest, ListCarriesResultsOnlyWhenAsked) {
  JobRecord ok = MakeJob(1, "cpu", JobStatus::kSucceeded);
  ok.result = Result::Json(json::object{{"rounds", 12}, {"pad", std::string(10'000, 'x')}}).output();
  JobRecord png = MakeJob(2, "mandelbrot", JobStatus::kSucceeded);
  png.result = Result::Bytes("image/png", std::string("\x89PNG\r\n\x1a\n\0binary", 15)).output();
  Insert(ok);
  Insert(png);
  Insert(MakeJob(3));

  JobPage plain = List(JobQuery{});
  ASSERT_EQ(Seqs(plain), (std::vector<std::uint64_t>{3, 2, 1}));
  EXPECT_EQ(plain.jobs[0].result, nullptr);
  for (const JobRecord* r : {&plain.jobs[1], &plain.jobs[2]}) {
    SCOPED_TRACE(r->id);
    ASSERT_NE(r->result, nullptr) << "a job with a result says so, and of which type";
    EXPECT_TRUE(r->result->json.is_null());
    EXPECT_TRUE(r->result->bytes.empty());
  }
  EXPECT_EQ(plain.jobs[1].result->content_type, "image/png");
  EXPECT_EQ(plain.jobs[2].result->content_type, "application/json");

  JobQuery q;
  q.include_result = true;
  JobPage full = List(q);
  ASSERT_EQ(Seqs(full), (std::vector<std::uint64_t>{3, 2, 1}));
  ASSERT_NE(full.jobs[2].result, nullptr);
  EXPECT_EQ(full.jobs[2].result->json, ok.result->json);
  ASSERT_NE(full.jobs[1].result, nullptr);
  EXPECT_EQ(full.jobs[1].result->content_type, "image/png");
  EXPECT_TRUE(full.jobs[1].result->bytes.empty()) << "bytes are never inlined in a listing";

  auto got = Get("job-1");
  ASSERT_TRUE(got.has_value());
  ExpectSameRecord(*got, ok);
}

// A store that reads results from disk stops before a page's results pass
// max_result_bytes; one that holds them in memory may answer (its caller measures).
// Before the fix each GET of a finished job read (and held) its own copy of the
// result: 500 clients of a 5 MB image held 2.5 GB.
TEST_P(StoreTest, GetsOfALargeResultShareTheCopyAReaderHolds) {
  JobRecord png = MakeJob(1, "mandelbrot", JobStatus::kSucceeded);
  png.result = Result::Bytes("image/png", std::string(1 << 20, 'p')).output();
  Insert(png);
  auto first = store_->Get(png.id);
  ASSERT_TRUE(first.has_value() && first->has_value());
  std::shared_ptr<const Output> held = (*first)->result;
  ASSERT_NE(held, nullptr);
  EXPECT_EQ(held->bytes, png.result->bytes);
  png.result.reset();  // Only the reader holds it now.
  for (int i = 0; i < 3; ++i) {
    auto again = store_->Get(png.id);
    ASSERT_TRUE(again.has_value() && again->has_value());
    EXPECT_EQ((*again)->result.get(), held.get()) << "a second copy of the result was made";
  }
  // Once nobody holds it, it is read again, whole.
  held.reset();
  first->reset();
  auto fresh = store_->Get(png.id);
  ASSERT_TRUE(fresh.has_value() && fresh->has_value());
  ASSERT_NE((*fresh)->result, nullptr);
  EXPECT_EQ((*fresh)->result->bytes, std::string(1 << 20, 'p'));
}

TEST_P(StoreTest, ListStopsReadingResultsPastMaxResultBytes) {
  for (std::uint64_t s = 1; s <= 4; ++s) {
    JobRecord r = MakeJob(s, "cpu", JobStatus::kSucceeded);
    r.result = Result::Json(json::string(std::string(10'000, 'x'))).output();
    Insert(r);
  }
  JobQuery q;
  q.include_result = true;
  q.max_result_bytes = 25'000;  // Two results and a half.
  auto over = store_->List(q);
  if (store_->blocking()) {
    ASSERT_FALSE(over.has_value());
    EXPECT_EQ(over.error().code, ErrorCode::kResponseTooLarge) << over.error().detail;
  } else if (!over.has_value()) {
    EXPECT_EQ(over.error().code, ErrorCode::kResponseTooLarge) << over.error().detail;
  }
  q.limit = 2;
  JobPage two = List(q);
  ASSERT_EQ(Seqs(two), (std::vector<std::uint64_t>{4, 3}));
  EXPECT_EQ(two.jobs[0].result->json.as_string().size(), 10'000u);
  // Without results the budget does not apply.
  JobQuery plain;
  plain.max_result_bytes = 25'000;
  EXPECT_EQ(List(plain).jobs.size(), 4u);
}

TEST_P(StoreTest, ListOfAnEmptyStore) {
  JobPage page = List(JobQuery{});
  EXPECT_TRUE(page.jobs.empty());
  EXPECT_FALSE(page.next_before_seq.has_value());
}

TEST_P(StoreTest, ListShowsUpdates) {
  for (std::uint64_t s = 1; s <= 3; ++s) Insert(MakeJob(s));
  JobRecord r = MakeJob(2, "sleep", JobStatus::kFailed);
  ASSERT_TRUE(store_->Update(r).has_value());
  JobQuery q;
  q.status = JobStatus::kFailed;
  EXPECT_EQ(Seqs(List(q)), std::vector<std::uint64_t>{2});
  q.status = JobStatus::kQueued;
  EXPECT_EQ(Seqs(List(q)), (std::vector<std::uint64_t>{3, 1}));
}

TEST_P(StoreTest, ListFiltersByStatusAndTask) {
  Insert(MakeJob(1, "sleep", JobStatus::kSucceeded));
  Insert(MakeJob(2, "cpu", JobStatus::kSucceeded));
  Insert(MakeJob(3, "sleep", JobStatus::kFailed));
  Insert(MakeJob(4, "sleep", JobStatus::kRunning));
  Insert(MakeJob(5, "cpu", JobStatus::kQueued));
  Insert(MakeJob(6, "sleep", JobStatus::kQueued));
  Insert(MakeJob(7, "sleep", JobStatus::kCanceled));

  JobQuery q;
  q.task = "sleep";
  EXPECT_EQ(Seqs(List(q)), (std::vector<std::uint64_t>{7, 6, 4, 3, 1}));
  q.task = "cpu";
  EXPECT_EQ(Seqs(List(q)), (std::vector<std::uint64_t>{5, 2}));
  q.task = "mandelbrot";
  EXPECT_TRUE(List(q).jobs.empty());
  q.task = "slee";
  EXPECT_TRUE(List(q).jobs.empty()) << "task matches exactly, not by prefix";

  JobQuery by_status;
  by_status.status = JobStatus::kSucceeded;
  EXPECT_EQ(Seqs(List(by_status)), (std::vector<std::uint64_t>{2, 1}));
  by_status.status = JobStatus::kQueued;
  EXPECT_EQ(Seqs(List(by_status)), (std::vector<std::uint64_t>{6, 5}));
  by_status.status = JobStatus::kRunning;
  EXPECT_EQ(Seqs(List(by_status)), std::vector<std::uint64_t>{4});

  JobQuery both;
  both.task = "sleep";
  both.status = JobStatus::kQueued;
  EXPECT_EQ(Seqs(List(both)), std::vector<std::uint64_t>{6});
  both.status = JobStatus::kSucceeded;
  EXPECT_EQ(Seqs(List(both)), std::vector<std::uint64_t>{1});
}

TEST_P(StoreTest, ATenantRoundTripsThroughInsertGetListAndRecovery) {
  JobRecord alice = MakeJob(1);
  alice.tenant = "alice";
  JobRecord none = MakeJob(2);  // Submitted without auth.
  JobRecord bob = MakeJob(3, "sleep", JobStatus::kSucceeded);
  bob.tenant = "bob";
  for (const JobRecord* r : {&alice, &none, &bob}) Insert(*r);
  for (const JobRecord* r : {&alice, &none, &bob}) {
    auto got = Get(r->id);
    ASSERT_TRUE(got.has_value()) << r->id;
    EXPECT_EQ(got->tenant, r->tenant) << r->id;
  }
  JobPage page = List(JobQuery{});
  ASSERT_EQ(Seqs(page), (std::vector<std::uint64_t>{3, 2, 1}));
  EXPECT_EQ(page.jobs[0].tenant, "bob");
  EXPECT_EQ(page.jobs[1].tenant, "");
  EXPECT_EQ(page.jobs[2].tenant, "alice");
  // An update keeps the job's tenant.
  alice.status = JobStatus::kRunning;
  alice.started_at = kT0 + 10;
  alice.attempts = 1;
  ASSERT_TRUE(store_->Update(alice).has_value());
  auto unfinished = store_->LoadUnfinished();
  ASSERT_TRUE(unfinished.has_value()) << unfinished.error().detail;
  ASSERT_EQ(unfinished->size(), 2u);
  EXPECT_EQ((*unfinished)[0].tenant, "alice");
  EXPECT_EQ((*unfinished)[1].tenant, "");
}

TEST_P(StoreTest, ListWithATenantReturnsOnlyThatTenantsJobs) {
  // Seqs 1..12 go round alice, bob and no tenant; odd seqs are cpu jobs.
  const std::vector<std::string> tenants = {"alice", "bob", ""};
  for (std::uint64_t s = 1; s <= 12; ++s) {
    JobRecord r = MakeJob(s, s % 2 == 1 ? "cpu" : "sleep", s % 4 == 0 ? JobStatus::kSucceeded : JobStatus::kQueued);
    r.tenant = tenants[s % 3];
    Insert(r);
  }
  JobQuery q;
  q.tenant = "alice";
  EXPECT_EQ(Seqs(List(q)), (std::vector<std::uint64_t>{12, 9, 6, 3}));
  q.tenant = "bob";
  EXPECT_EQ(Seqs(List(q)), (std::vector<std::uint64_t>{10, 7, 4, 1}));
  for (const JobRecord& j : List(q).jobs) EXPECT_EQ(j.tenant, "bob") << j.id;
  q.tenant = "";
  EXPECT_EQ(Seqs(List(q)), (std::vector<std::uint64_t>{11, 8, 5, 2})) << "'' is the tenant of jobs without auth";
  q.tenant = "carol";
  EXPECT_TRUE(List(q).jobs.empty());
  q.tenant = "ali";
  EXPECT_TRUE(List(q).jobs.empty()) << "the tenant matches exactly, not by prefix";
  q.tenant = std::nullopt;
  EXPECT_EQ(List(q).jobs.size(), 12u) << "without a tenant, every tenant's jobs";

  // With the other filters, and a page at a time.
  JobQuery paged;
  paged.tenant = "alice";
  paged.limit = 1;
  EXPECT_EQ(ListAllPages(paged), (std::vector<std::uint64_t>{12, 9, 6, 3}));
  paged.limit = 3;
  JobPage first = List(paged);
  EXPECT_EQ(Seqs(first), (std::vector<std::uint64_t>{12, 9, 6}));
  ASSERT_TRUE(first.next_before_seq.has_value());
  paged.before_seq = *first.next_before_seq;
  JobPage second = List(paged);
  EXPECT_EQ(Seqs(second), std::vector<std::uint64_t>{3});
  EXPECT_FALSE(second.next_before_seq.has_value()) << "bob's older jobs are not alice's";
  JobQuery by_task;
  by_task.tenant = "alice";
  by_task.task = "cpu";
  EXPECT_EQ(Seqs(List(by_task)), (std::vector<std::uint64_t>{9, 3}));
  JobQuery by_status;
  by_status.tenant = "alice";
  by_status.status = JobStatus::kSucceeded;
  EXPECT_EQ(Seqs(List(by_status)), std::vector<std::uint64_t>{12});
  by_status.limit = 1;
  by_status.tenant = "";
  by_status.status = JobStatus::kQueued;
  EXPECT_EQ(ListAllPages(by_status), (std::vector<std::uint64_t>{11, 5, 2}));
}

TEST_P(StoreTest, LoadIdempotencyKeysNamesEachKeysTenant) {
  JobRecord alice = MakeJob(1);
  alice.tenant = "alice";
  alice.idempotency_key = "order-7";
  alice.request_hash = 11;
  // Another tenant's job with the same task and key: keys are per tenant.
  JobRecord bob = MakeJob(2);
  bob.tenant = "bob";
  bob.idempotency_key = "order-7";
  bob.request_hash = 22;
  JobRecord none = MakeJob(3, "cpu");
  none.idempotency_key = "order-7";
  none.request_hash = 33;
  JobRecord keyless = MakeJob(4);
  keyless.tenant = "alice";
  for (const JobRecord* r : {&alice, &bob, &none, &keyless}) Insert(*r);
  auto keys = store_->LoadIdempotencyKeys(kT0);
  ASSERT_TRUE(keys.has_value()) << keys.error().detail;
  ASSERT_EQ(keys->size(), 3u);
  for (std::size_t i = 0; i < keys->size(); ++i) {
    const JobRecord& r = i == 0 ? alice : i == 1 ? bob : none;
    const IdempotencyEntry& e = (*keys)[i];
    SCOPED_TRACE(r.id);
    EXPECT_EQ(e.task, r.task);
    EXPECT_EQ(e.tenant, r.tenant);
    EXPECT_EQ(e.key, "order-7");
    EXPECT_EQ(e.job_id, r.id);
    EXPECT_EQ(e.request_hash, r.request_hash);
    EXPECT_EQ(e.created_at, r.created_at);
  }
  keys = store_->LoadIdempotencyKeys(bob.created_at);
  ASSERT_TRUE(keys.has_value()) << keys.error().detail;
  ASSERT_EQ(keys->size(), 2u) << "only keys of jobs created since";
  EXPECT_EQ((*keys)[0].tenant, "bob");
  EXPECT_EQ((*keys)[1].tenant, "");
}

TEST_P(StoreTest, PaginationFollowsNextBeforeSeq) {
  for (std::uint64_t s = 1; s <= 7; ++s) Insert(MakeJob(s));
  JobQuery q;
  q.limit = 3;
  JobPage first = List(q);
  EXPECT_EQ(Seqs(first), (std::vector<std::uint64_t>{7, 6, 5}));
  ASSERT_TRUE(first.next_before_seq.has_value()) << "more jobs match: a cursor is required";
  q.before_seq = *first.next_before_seq;
  JobPage second = List(q);
  EXPECT_EQ(Seqs(second), (std::vector<std::uint64_t>{4, 3, 2}));
  ASSERT_TRUE(second.next_before_seq.has_value());
  q.before_seq = *second.next_before_seq;
  JobPage third = List(q);
  EXPECT_EQ(Seqs(third), std::vector<std::uint64_t>{1});
  EXPECT_FALSE(third.next_before_seq.has_value()) << "nothing more matches";

  JobQuery all;
  all.limit = 2;
  EXPECT_EQ(ListAllPages(all), (std::vector<std::uint64_t>{7, 6, 5, 4, 3, 2, 1}));
  all.limit = 7;
  EXPECT_EQ(ListAllPages(all), (std::vector<std::uint64_t>{7, 6, 5, 4, 3, 2, 1}));
  all.limit = 1;
  EXPECT_EQ(ListAllPages(all), (std::vector<std::uint64_t>{7, 6, 5, 4, 3, 2, 1}));
}

TEST_P(StoreTest, BeforeSeqIsExclusive) {
  for (std::uint64_t s = 1; s <= 5; ++s) Insert(MakeJob(s));
  JobQuery q;
  q.before_seq = 4;
  EXPECT_EQ(Seqs(List(q)), (std::vector<std::uint64_t>{3, 2, 1}));
  q.before_seq = 1;
  EXPECT_TRUE(List(q).jobs.empty());
}

TEST_P(StoreTest, PaginationWithAFilterSkipsNonMatchingJobs) {
  // Even seqs are cpu jobs, odd ones sleep.
  for (std::uint64_t s = 1; s <= 12; ++s) Insert(MakeJob(s, s % 2 == 0 ? "cpu" : "sleep"));
  JobQuery q;
  q.task = "cpu";
  q.limit = 4;
  JobPage first = List(q);
  EXPECT_EQ(Seqs(first), (std::vector<std::uint64_t>{12, 10, 8, 6}));
  ASSERT_TRUE(first.next_before_seq.has_value());
  EXPECT_EQ(ListAllPages(q), (std::vector<std::uint64_t>{12, 10, 8, 6, 4, 2}));
}

TEST_P(StoreTest, RemoveFinishedBeforeRemovesOnlyFinishedJobsOlderThanTheCutoff) {
  JobRecord old_ok = MakeJob(1, "sleep", JobStatus::kSucceeded);
  old_ok.finished_at = kT0 + 100;
  JobRecord old_failed = MakeJob(2, "sleep", JobStatus::kFailed);
  old_failed.finished_at = kT0 + 200;
  JobRecord at_cutoff = MakeJob(3, "sleep", JobStatus::kCanceled);
  at_cutoff.finished_at = kT0 + 300;
  JobRecord recent = MakeJob(4, "sleep", JobStatus::kSucceeded);
  recent.finished_at = kT0 + 400;
  JobRecord running = MakeJob(5, "sleep", JobStatus::kRunning);
  running.created_at = kT0;  // Old, but not finished.
  JobRecord queued = MakeJob(6, "sleep", JobStatus::kQueued);
  queued.created_at = kT0;
  for (const JobRecord* r : {&old_ok, &old_failed, &at_cutoff, &recent, &running, &queued}) {
    Insert(*r);
  }

  auto removed = store_->RemoveFinishedBefore(kT0 + 300);
  ASSERT_TRUE(removed.has_value());
  EXPECT_EQ(*removed, 2u);
  EXPECT_FALSE(Get("job-1").has_value());
  EXPECT_FALSE(Get("job-2").has_value());
  EXPECT_TRUE(Get("job-3").has_value()) << "the cutoff is exclusive";
  EXPECT_TRUE(Get("job-4").has_value());
  EXPECT_TRUE(Get("job-5").has_value());
  EXPECT_TRUE(Get("job-6").has_value());
  EXPECT_EQ(Seqs(List(JobQuery{})), (std::vector<std::uint64_t>{6, 5, 4, 3}));

  removed = store_->RemoveFinishedBefore(kT0 + 300);
  ASSERT_TRUE(removed.has_value());
  EXPECT_EQ(*removed, 0u) << "nothing left to remove";

  // Far in the future: every finished job goes, active ones stay.
  removed = store_->RemoveFinishedBefore(kT0 + 1'000'000);
  ASSERT_TRUE(removed.has_value());
  EXPECT_EQ(*removed, 2u);
  EXPECT_EQ(Seqs(List(JobQuery{})), (std::vector<std::uint64_t>{6, 5}));
}

TEST_P(StoreTest, RemoveFinishedBeforeSeesJobsThatFinishedThroughUpdate) {
  JobRecord r = MakeJob(1);
  Insert(r);
  Insert(MakeJob(2));
  r.status = JobStatus::kRunning;
  r.started_at = kT0 + 10;
  ASSERT_TRUE(store_->Update(r).has_value());
  auto removed = store_->RemoveFinishedBefore(kT0 + 1'000'000);
  ASSERT_TRUE(removed.has_value());
  EXPECT_EQ(*removed, 0u) << "running jobs are never removed";

  r.status = JobStatus::kSucceeded;
  r.finished_at = kT0 + 20;
  ASSERT_TRUE(store_->Update(r).has_value());
  removed = store_->RemoveFinishedBefore(kT0 + 21);
  ASSERT_TRUE(removed.has_value());
  EXPECT_EQ(*removed, 1u);
  EXPECT_FALSE(Get("job-1").has_value());
  EXPECT_TRUE(Get("job-2").has_value());
}

// Jobs do not always finish in the order of their finished_at (a canceled running job
// is stamped when the cancel arrives; the clock may step). Removal goes by the time.
TEST_P(StoreTest, RemoveFinishedBeforeGoesByFinishedAtNotByTheOrderOfWrites) {
  JobRecord late = MakeJob(1, "sleep", JobStatus::kSucceeded);
  late.finished_at = kT0 + 500;
  JobRecord early = MakeJob(2, "sleep", JobStatus::kSucceeded);
  early.finished_at = kT0 + 100;
  Insert(late);
  Insert(early);
  auto removed = store_->RemoveFinishedBefore(kT0 + 200);
  ASSERT_TRUE(removed.has_value());
  EXPECT_EQ(*removed, 1u);
  EXPECT_FALSE(Get("job-2").has_value()) << "finished at +100, before the cutoff +200";
  EXPECT_TRUE(Get("job-1").has_value());
}

TEST_P(StoreTest, RemovedIdsMayNotBeFoundOrUpdated) {
  Insert(MakeJob(1, "sleep", JobStatus::kSucceeded));
  ASSERT_EQ(*store_->RemoveFinishedBefore(kT0 + 1'000'000), 1u);
  auto u = store_->Update(MakeJob(1, "sleep", JobStatus::kSucceeded));
  ASSERT_FALSE(u.has_value());
  EXPECT_EQ(u.error().code, ErrorCode::kNotFound);
  EXPECT_TRUE(List(JobQuery{}).jobs.empty());
}

TEST_P(StoreTest, ManyJobs) {
  constexpr std::uint64_t kJobs = 2000;
  for (std::uint64_t s = 1; s <= kJobs; ++s) {
    Insert(MakeJob(s, "noop", s % 5 == 0 ? JobStatus::kSucceeded : JobStatus::kQueued));
  }
  JobQuery q;
  q.limit = 1000;
  q.status = JobStatus::kSucceeded;
  std::vector<std::uint64_t> seqs = ListAllPages(q);
  ASSERT_EQ(seqs.size(), kJobs / 5);
  EXPECT_EQ(seqs.front(), kJobs);
  EXPECT_EQ(seqs.back(), 5u);
  EXPECT_TRUE(std::is_sorted(seqs.rbegin(), seqs.rend()));
}

INSTANTIATE_TEST_SUITE_P(AllStores, StoreTest, ::testing::ValuesIn(StoreFactories()),
                         [](const ::testing::TestParamInfo<StoreFactory>& info) { return info.param.name; });

TEST(OpenStoreTest, UnknownSpecIsAnError) {
  auto s = OpenStore("cassandra");
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
  EXPECT_NE(s.error().detail.find("cassandra"), std::string::npos);
}

// SQLite's own checkpoint would run inside the commit that takes the WAL past 1,000
// pages, making that write (a submit's, a large result's) wait for it. The database
// file grows only when the WAL is checkpointed into it, which shows when that happened.
TEST(SqliteStoreTest, NoWriteWaitsForTheCheckpointOfItsOwnPages) {
  static ScratchDirs scratch;
  const std::string path = scratch.Make() + "/jobs.db";
  auto opened = SqliteStore::Open(SqliteOptions{path, /*synchronous_full=*/false});
  ASSERT_TRUE(opened.has_value()) << opened.error().detail;
  SqliteStore& store = **opened;
  constexpr std::size_t kMiB = 1 << 20;
  auto write = [&](std::uint64_t seq, std::size_t bytes) {
    JobRecord r = MakeJob(seq);
    r.input = std::make_shared<const json::value>(json::string(bytes, 'x'));
    return store.Insert(r);
  };
  const auto db_size = [&] { return std::filesystem::file_size(path); };
  ASSERT_TRUE(write(1, 5 * kMiB));  // About 1,300 pages in one commit.
  EXPECT_LT(db_size(), kMiB) << "the write waited for a checkpoint of its own pages";
  store.OnIdle();
  EXPECT_GE(db_size(), 5 * kMiB) << "idle, the WAL was not checkpointed";

  // A writer that is never idle: the next write checkpoints first.
  const std::uintmax_t before = db_size();
  ASSERT_TRUE(write(2, 5 * kMiB));
  EXPECT_LT(db_size(), before + kMiB);
  ASSERT_TRUE(write(3, 10));
  EXPECT_GE(db_size(), before + 5 * kMiB) << "the WAL kept growing past kCheckpointFrames";
}

}  // namespace
}  // namespace offload
