// A real CPU-bound render with a binary result: the Mandelbrot set as a PNG.
#pragma once

#include <boost/json/value.hpp>
#include <optional>
#include <string>

#include "offload/context.h"

namespace offload {

struct MandelbrotParams {
  std::int64_t width = 512;
  std::int64_t height = 512;
  std::int64_t max_iter = 256;
};

// Fills `out` from input {"width", "height", "max_iter"} (each optional). Returns a
// detail naming the field when one is out of range.
std::optional<std::string> ReadMandelbrotParams(const boost::json::value& input, MandelbrotParams* out);

// Renders and PNG-encodes. Checks ctx.canceled() every row and reports progress.
// Returns false when canceled or when libpng fails.
bool RenderMandelbrotPng(const MandelbrotParams& p, Context& ctx, std::string* png);

}  // namespace offload
