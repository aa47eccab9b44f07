#include "tasks/mandelbrot.h"

#include <png.h>

#include <vector>

#include "tasks/builtin_tasks.h"

namespace offload {
namespace {

void AppendToString(png_structp png, png_bytep data, png_size_t length) {
  auto* out = static_cast<std::string*>(png_get_io_ptr(png));
  out->append(reinterpret_cast<const char*>(data), length);
}

void NoFlush(png_structp) {}

// Smooth colouring: maps an escape count to an RGB pixel.
void Colour(int iter, int max_iter, png_bytep px) {
  if (iter >= max_iter) {
    px[0] = px[1] = px[2] = 0;
    return;
  }
  double t = static_cast<double>(iter) / max_iter;
  px[0] = static_cast<png_byte>(9 * (1 - t) * t * t * t * 255);
  px[1] = static_cast<png_byte>(15 * (1 - t) * (1 - t) * t * t * 255);
  px[2] = static_cast<png_byte>(8.5 * (1 - t) * (1 - t) * (1 - t) * t * 255);
}

}  // namespace

std::optional<std::string> ReadMandelbrotParams(const boost::json::value& input, MandelbrotParams* out) {
  if (input.is_null()) return std::nullopt;  // All defaults.
  if (auto e = ReadIntField(input, "width", 1, kMaxImageSide, out->width, &out->width)) return e;
  if (auto e = ReadIntField(input, "height", 1, kMaxImageSide, out->height, &out->height)) return e;
  return ReadIntField(input, "max_iter", 1, 100000, out->max_iter, &out->max_iter);
}

bool RenderMandelbrotPng(const MandelbrotParams& p, Context& ctx, std::string* png_out) {
  const int w = static_cast<int>(p.width), h = static_cast<int>(p.height);
  const int max_iter = static_cast<int>(p.max_iter);
  std::vector<png_byte> row(static_cast<size_t>(w) * 3);

  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  if (!info) {
    png_destroy_write_struct(&png, nullptr);
    return false;
  }
  // libpng reports errors by longjmp; nothing with a destructor is created between
  // here and the end of the function except what already exists above.
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    return false;
  }
  png_set_write_fn(png, png_out, AppendToString, NoFlush);
  png_set_IHDR(png, info, w, h, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_set_compression_level(png, 3);
  png_write_info(png, info);

  const double x0 = -2.5, x1 = 1.0, y0 = -1.25, y1 = 1.25;
  bool canceled = false;
  for (int y = 0; y < h; ++y) {
    if (ctx.canceled()) {
      canceled = true;
      break;
    }
    const double ci = y0 + (y1 - y0) * y / h;
    for (int x = 0; x < w; ++x) {
      // A wide row deep in the set takes seconds at max_iter 100000; checking once
      // per row would break the 50 ms cancellation promise. 16 pixels is at most
      // ~1.6M iterations; the check is one atomic load.
      if ((x & 15) == 0 && ctx.canceled()) {
        canceled = true;
        break;
      }
      const double cr = x0 + (x1 - x0) * x / w;
      double zr = 0, zi = 0;
      int i = 0;
      while (i < max_iter && zr * zr + zi * zi <= 4.0) {
        double t = zr * zr - zi * zi + cr;
        zi = 2 * zr * zi + ci;
        zr = t;
        ++i;
      }
      Colour(i, max_iter, &row[static_cast<size_t>(x) * 3]);
    }
    if (canceled) break;
    png_write_row(png, row.data());
    ctx.ReportProgress(static_cast<double>(y + 1) / h);
  }
  if (!canceled) png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return !canceled;
}

}  // namespace offload
