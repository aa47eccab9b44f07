// What one job of a task holds while it runs: units of named resources, resolved to
// indexes into the scheduler's capacity table.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

namespace offload {

struct ResourceDemand {
  std::vector<std::pair<int, std::int64_t>> units;  // (resource index, amount > 0)
  std::uint64_t mask = 0;                           // Bit i set when resource i is used.

  void Add(int resource, std::int64_t amount) {
    units.emplace_back(resource, amount);
    mask |= std::uint64_t{1} << resource;
  }
};

}  // namespace offload
