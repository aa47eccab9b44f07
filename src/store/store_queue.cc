#include "store/store_queue.h"

#include <array>

#include "store/inline_store_queue.h"
#include "store/threaded_store_queue.h"

namespace offload {

namespace {

// Batches grow with load up to ThreadedStoreQueue::kMaxBatch.
constexpr std::array<double, 12> kBatchSizes = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096};
// A WAL commit with its sync is a millisecond or so on an SSD; seconds say the disk is in trouble.
constexpr std::array<double, 13> kBatchSeconds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                  0.025,  0.05,    0.1,    0.25,  1,      5};

}  // namespace

StoreWriteStats::StoreWriteStats() : batch_size(kBatchSizes), batch_seconds(kBatchSeconds) {}

std::unique_ptr<StoreQueue> StoreQueue::Create(Store* store) {
  if (store->blocking()) return std::make_unique<ThreadedStoreQueue>(store);
  return std::make_unique<InlineStoreQueue>(store);
}

}  // namespace offload
