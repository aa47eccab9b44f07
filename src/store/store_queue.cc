#include "store/store_queue.h"

#include "store/inline_store_queue.h"
#include "store/threaded_store_queue.h"

namespace offload {

std::unique_ptr<StoreQueue> StoreQueue::Create(Store* store) {
  if (store->blocking()) return std::make_unique<ThreadedStoreQueue>(store);
  return std::make_unique<InlineStoreQueue>(store);
}

}  // namespace offload
