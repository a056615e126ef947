// Binary convolution as a blocked popcount GEMM without a float im2col: for a tile of 16
// output pixels the kernels read one row of 16 words per (tap, word) of the receptive
// fields, in place in the padded input (padded_input.h) or from a small copy, and count
// the mismatching bits of every filter against it. The pool's threads (thread_pool.h) split
// the (image, group, filter block, tile) tasks.
#include "xnor_conv.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "binary_kernels.h"
#include "bitpack.h"
#include "padded_input.h"
#include "thread_pool.h"

namespace bmxnet {
namespace kernels {
namespace {

constexpr int64_t kMinBlockFilters = 64;  // filters of a thread's block, unless a group has fewer
constexpr int64_t kCopyRow = 2 * kTilePixels;  // words per row of a tile's copy (see PointRows)

int64_t FloorDivide(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Output rows (or columns) first..last, none when first > last.
struct OutputSpan {
  int64_t first, last;
  bool Contains(int64_t i) const { return first <= i && i <= last; }
};

// Bits first..end-1 of a tile's pixel mask (none when end <= first).
uint16_t PixelBits(int64_t first, int64_t end) {
  return end > first ? static_cast<uint16_t>((1u << end) - (1u << first)) : 0;
}

// The plan of a convolution holds its geometry's padding masks (defined below).
struct ConvPlan;
struct TileMasks;
std::shared_ptr<const TileMasks> BuildTileMasks(const ConvPlan& plan);
// The plan's masks: kept's, or (null) built for this call.
std::shared_ptr<const TileMasks> MasksOf(const ConvPlan& plan, ConvMemory::Kept* kept);

struct ConvPlan {
  const ConvGeometry& g;
  PaddedInput in;
  int64_t per_group, words, filters, taps, depth, out_w, spatial, tiles;
  bool zero_padding;
  bool rows_continue;  // one output row's words continue into the next one's (no border)
  // Output rows (columns) whose receptive fields have kernel row i (column j) inside the
  // image, and those whose fields lie wholly inside.
  std::vector<OutputSpan> row_inside, column_inside;
  OutputSpan inner_rows, inner_columns;
  std::vector<int64_t> row_offset;  // where word k of a pixel's field lies from its top-left tap
  std::shared_ptr<const TileMasks> masks;  // of this geometry's tiles (kept in a ConvMemory)

  ConvPlan(const ConvGeometry& geometry, ConvMemory::Kept* kept) : g(geometry), in(geometry) {
    per_group = g.in_channels / g.groups;
    words = in.words;
    filters = g.out_channels / g.groups;
    taps = g.kernel_h * g.kernel_w;
    depth = taps * words;
    out_w = g.OutWidth();
    spatial = g.OutHeight() * out_w;
    tiles = (spatial + kTilePixels - 1) / kTilePixels;
    zero_padding = g.pad_value == 0.0f && (in.height > g.in_height || in.width > g.in_width);
    rows_continue = g.stride_h == 1 && out_w == in.width;
    for (int64_t i = 0; i < g.kernel_h; ++i)
      row_inside.push_back(Inside(i * g.dilate_h - g.pad_h, g.stride_h, g.in_height));
    for (int64_t j = 0; j < g.kernel_w; ++j)
      column_inside.push_back(Inside(j * g.dilate_w - g.pad_w, g.stride_w, g.in_width));
    // A kernel row further down is inside from an earlier output row on, and up to an
    // earlier one: the first row bounds where every row is inside from, the last up to.
    inner_rows = {row_inside.front().first, row_inside.back().last};
    inner_columns = {column_inside.front().first, column_inside.back().last};
    for (int64_t i = 0; i < g.kernel_h; ++i)
      for (int64_t j = 0; j < g.kernel_w; ++j)
        for (int64_t c = 0; c < words; ++c)
          row_offset.push_back(c * in.plane + i * g.dilate_h * in.width + j * g.dilate_w);
    masks = MasksOf(*this, kept);
  }

  // Outputs o with 0 <= o * stride + offset < size.
  static OutputSpan Inside(int64_t offset, int64_t stride, int64_t size) {
    return {-FloorDivide(offset, stride), FloorDivide(size - 1 - offset, stride)};
  }
};

// The task a thread is at, (image, group, block of filters, tile) with the tile fastest,
// and where the tile starts; stepped without divisions, which cost as much as a tenth of
// a 64-channel tile's work.
struct TaskCursor {
  int64_t tile, block, group, n;
  int64_t row, column;  // output pixel of the tile's first pixel

  TaskCursor(const ConvPlan& plan, int64_t blocks, int64_t task)
      : tile(task % plan.tiles), block(task / plan.tiles % blocks),
        group(task / (blocks * plan.tiles) % plan.g.groups), n(task / (blocks * plan.tiles * plan.g.groups)),
        row(tile * kTilePixels / plan.out_w), column(tile * kTilePixels % plan.out_w) {}

  void Next(const ConvPlan& plan, int64_t blocks) {
    for (column += kTilePixels; column >= plan.out_w; column -= plan.out_w) ++row;
    if (++tile < plan.tiles) return;
    tile = row = column = 0;
    if (++block < blocks) return;
    block = 0;
    if (++group < plan.g.groups) return;
    group = 0;
    ++n;
  }
};

// The pixels of a tile that lie in one output row: bits first..first+length-1 of its
// masks, at output row `row` from column `column` on.
struct TileRun {
  int first, length;
  int64_t row, column;
};

// A tile split into its runs.
struct TileRuns {
  TileRun runs[kTilePixels];
  int count;

  TileRuns(const ConvPlan& plan, const TaskCursor& cursor, int pixels) : count(0) {
    for (int p = 0, length; p < pixels; p += length) {
      const int64_t column = p == 0 ? cursor.column : 0;
      length = static_cast<int>(std::min<int64_t>(pixels - p, plan.out_w - column));
      runs[count] = {p, length, cursor.row + count, column};
      ++count;
    }
  }
};

// What the kernels count of each tile of an image: the valid masks of the tiles that touch
// zero padding and the bits each of their pixels counts (every tile of every image and
// group has the same). Worked out per tile they cost up to a tenth of a 64-channel layer, so
// they are worked out once per geometry: per call, or once for a node that keeps a
// ConvMemory (docs/performance.md).
struct TileMasks {
  std::vector<int32_t> entry;   // per tile: index of its masks, or -1 when every tap is inside
  std::vector<uint16_t> valid;  // depth masks per entry
  std::vector<int32_t> counted;  // kTilePixels per entry
  int32_t all_taps[kTilePixels];  // the counts of a tile without padding
  int64_t depth;

  const uint16_t* Valid(int64_t tile) const {
    return entry[tile] < 0 ? nullptr : valid.data() + entry[tile] * depth;
  }
  const int32_t* Counted(int64_t tile) const {
    return entry[tile] < 0 ? all_taps : counted.data() + entry[tile] * kTilePixels;
  }
  int64_t Bytes() const {
    return static_cast<int64_t>(entry.size() * sizeof(int32_t) + valid.size() * sizeof(uint16_t) +
                                counted.size() * sizeof(int32_t));
  }
};

// Whether the tile of `runs` has taps in zero padding; if so, writes its valid masks
// (depth of them) and the bits each pixel counts: a tap is inside the image when both its
// row and its column are.
bool MaskPadding(const ConvPlan& plan, const TileRuns& tile, uint16_t* valid, int32_t* counted) {
  if (!plan.zero_padding) return false;
  const TileRun* runs = tile.runs;
  bool inside = true;
  for (int r = 0; r < tile.count; ++r)
    inside = inside && plan.inner_rows.Contains(runs[r].row) && plan.inner_columns.Contains(runs[r].column) &&
             plan.inner_columns.Contains(runs[r].column + runs[r].length - 1);
  if (inside) return false;
  // Bit p of row_inside[i] (column_inside[j]): row i (column j) of pixel p's field is inside.
  std::vector<uint16_t> row_inside(plan.g.kernel_h, 0), column_inside(plan.g.kernel_w, 0);
  for (int64_t i = 0; i < plan.g.kernel_h; ++i)
    for (int r = 0; r < tile.count; ++r)
      if (plan.row_inside[i].Contains(runs[r].row))
        row_inside[i] |= PixelBits(runs[r].first, runs[r].first + runs[r].length);
  for (int64_t j = 0; j < plan.g.kernel_w; ++j)
    for (int r = 0; r < tile.count; ++r) {
      const TileRun& run = runs[r];
      const int64_t from = std::max<int64_t>(plan.column_inside[j].first - run.column, 0);
      const int64_t to = std::min<int64_t>(plan.column_inside[j].last + 1 - run.column, run.length);
      column_inside[j] |= PixelBits(run.first + from, run.first + to);
    }
  for (int64_t i = 0; i < plan.g.kernel_h; ++i)
    for (int64_t j = 0; j < plan.g.kernel_w; ++j, valid += plan.words)
      std::fill_n(valid, plan.words, static_cast<uint16_t>(row_inside[i] & column_inside[j]));
  int32_t rows[kTilePixels] = {0}, columns[kTilePixels] = {0};
  for (int64_t i = 0; i < plan.g.kernel_h; ++i)
    for (int p = 0; p < kTilePixels; ++p) rows[p] += row_inside[i] >> p & 1;
  for (int64_t j = 0; j < plan.g.kernel_w; ++j)
    for (int p = 0; p < kTilePixels; ++p) columns[p] += column_inside[j] >> p & 1;
  for (int p = 0; p < kTilePixels; ++p) counted[p] = rows[p] * columns[p] * static_cast<int32_t>(plan.per_group);
  return true;
}

std::shared_ptr<const TileMasks> BuildTileMasks(const ConvPlan& plan) {
  auto masks = std::make_shared<TileMasks>();
  masks->depth = plan.depth;
  std::fill_n(masks->all_taps, kTilePixels, static_cast<int32_t>(plan.taps * plan.per_group));
  masks->entry.assign(plan.tiles, -1);
  std::vector<uint16_t> valid(plan.depth);
  int32_t counted[kTilePixels];
  TaskCursor at(plan, 1, 0);
  for (int64_t tile = 0; tile < plan.tiles; ++tile, at.Next(plan, 1)) {
    const int pixels = static_cast<int>(std::min<int64_t>(kTilePixels, plan.spatial - tile * kTilePixels));
    if (!MaskPadding(plan, TileRuns(plan, at, pixels), valid.data(), counted)) continue;
    masks->entry[tile] = static_cast<int32_t>(masks->counted.size() / kTilePixels);
    masks->valid.insert(masks->valid.end(), valid.begin(), valid.end());
    masks->counted.insert(masks->counted.end(), counted, counted + kTilePixels);
  }
  return masks;
}

// A thread's copy of a call's weights as the kernels read them, prepared one (group, block
// of filters) at a time, when the thread first meets it: read from a single copy, the
// lines one core prepared cost the other more than preparing them again
// (docs/performance.md).
struct PreparedWeights {
  std::vector<uint64_t> words;
  std::vector<uint64_t> stamps;  // per (group, block): the weights it was prepared from
};

// Stamps of weights, which tell a thread's prepared copy from those of other weights.
std::atomic<uint64_t> next_stamp{1};

}  // namespace

// A node's masks (for its last geometry, the batch aside) and its threads' prepared weights
// (for its last weights).
struct ConvMemory::Kept {
  using Key = std::array<int64_t, 14>;
  Key geometry{};
  std::shared_ptr<const TileMasks> masks;
  // the weights the threads prepared: where, their version, how they were split
  std::array<uint64_t, 4> weights{};
  uint64_t stamp = 0;
  std::mutex mutex;  // the map, which the threads of a call look up at once
  std::map<std::thread::id, PreparedWeights> prepared;

  std::shared_ptr<const TileMasks> MasksFor(const ConvPlan& plan) {
    const ConvGeometry& g = plan.g;
    int32_t pad_bits;
    std::memcpy(&pad_bits, &g.pad_value, sizeof(pad_bits));
    const Key key = {g.in_channels, g.in_height, g.in_width, g.out_channels, g.kernel_h, g.kernel_w,
                     g.stride_h, g.stride_w, g.pad_h, g.pad_w, g.dilate_h, g.dilate_w, g.groups, pad_bits};
    if (masks == nullptr || key != geometry) {
      masks = BuildTileMasks(plan);
      geometry = key;
    }
    return masks;
  }

  // The stamp of these weights: the last one while the same tensor keeps its version (0:
  // unknown, so always a new one).
  uint64_t StampFor(const uint64_t* w, uint64_t version, Isa isa, int64_t blocks) {
    const std::array<uint64_t, 4> identity = {reinterpret_cast<uintptr_t>(w), version, static_cast<uint64_t>(isa),
                                              static_cast<uint64_t>(blocks)};
    if (version == 0 || identity != weights || stamp == 0) {
      weights = identity;
      stamp = next_stamp++;
    }
    return stamp;
  }

  PreparedWeights& ThreadsCopy() {
    std::lock_guard<std::mutex> lock(mutex);
    return prepared[std::this_thread::get_id()];
  }
};

ConvMemory::ConvMemory() : kept_(new Kept) {}
ConvMemory::~ConvMemory() = default;
ConvMemory::ConvMemory(const ConvMemory&) : kept_(new Kept) {}
ConvMemory& ConvMemory::operator=(const ConvMemory&) {
  kept_.reset(new Kept);
  return *this;
}

namespace {

std::shared_ptr<const TileMasks> MasksOf(const ConvPlan& plan, ConvMemory::Kept* kept) {
  return kept != nullptr ? kept->MasksFor(plan) : BuildTileMasks(plan);
}

// A thread's buffers for a tile (kept from call to call): the rows the kernels read and a
// copy of the receptive fields for tiles that cannot be read in place.
struct TileBuffers {
  std::vector<const uint64_t*> rows;
  std::vector<uint64_t> copy;

  void Fit(const ConvPlan& plan) {
    rows.resize(plan.depth);
    copy.resize(plan.depth * kCopyRow);
  }
};

// Points rows[k] at word k of the tile's pixels. A tile of a stride-1 convolution reads in
// place when it lies in one output row or the rows continue; others are copied run by run.
// Pixels past the end are never stored.
void PointRows(const ConvPlan& plan, const uint64_t* image, const TaskCursor& cursor, int pixels,
               TileBuffers* buffers) {
  const ConvGeometry& g = plan.g;
  const bool one_row = cursor.column + pixels <= plan.out_w;
  if (g.stride_w == 1 && (one_row || plan.rows_continue)) {
    const uint64_t* corner = image + cursor.row * g.stride_h * plan.in.width + cursor.column;
    for (int64_t k = 0; k < plan.depth; ++k) buffers->rows[k] = corner + plan.row_offset[k];
    return;
  }
  // Copy rows are kCopyRow words: a run of stride-1 pixels copies a whole 16 words (one
  // fixed-size copy, no call), whose tail the next run overwrites.
  const TileRuns tile(plan, cursor, pixels);
  for (int r = 0; r < tile.count; ++r) {
    const TileRun& run = tile.runs[r];
    const uint64_t* corner = image + run.row * g.stride_h * plan.in.width + run.column * g.stride_w;
    for (int64_t k = 0; k < plan.depth; ++k) {
      const uint64_t* source = corner + plan.row_offset[k];
      uint64_t* target = buffers->copy.data() + k * kCopyRow + run.first;
      if (g.stride_w == 1) {
        uint64_t words[kTilePixels];
        std::memcpy(words, source, sizeof(words));
        std::memcpy(target, words, sizeof(words));
      } else {
        for (int q = 0; q < run.length; ++q) target[q] = source[q * g.stride_w];
      }
    }
  }
  for (int64_t k = 0; k < plan.depth; ++k) buffers->rows[k] = buffers->copy.data() + k * kCopyRow;
}

TilePanel GatherPanel(const ConvPlan& plan, const uint64_t* x, const TaskCursor& cursor, TileBuffers* buffers) {
  const int pixels = static_cast<int>(std::min<int64_t>(kTilePixels, plan.spatial - cursor.tile * kTilePixels));
  PointRows(plan, x + plan.in.Offset(cursor.n, 0, cursor.group, 0, 0), cursor, pixels, buffers);
  return {buffers->rows.data(), plan.masks->Valid(cursor.tile), plan.masks->Counted(cursor.tile), pixels};
}

// A thread wakes up in microseconds but not in nothing; layers that one thread finishes
// in about that time run on the caller alone.
int TeamSize(const ConvPlan& plan, Isa isa, int threads) {
  const int64_t binary_macs = plan.g.batch * plan.g.out_channels * plan.spatial * plan.taps * plan.per_group;
  const int64_t serial_below = isa == Isa::kAvx512 ? (int64_t(4) << 20)
                               : isa == Isa::kAvx2 ? (int64_t(2) << 20) : (int64_t(1) << 19);
  return binary_macs < serial_below ? 1 : threads;
}

// What the tasks of one convolution share: the packed input, the weights and where the
// outputs go.
struct ConvJob {
  const ConvPlan& plan;
  const BinaryKernels& kernels;
  const uint64_t* w;
  const float *scale, *bias;
  ResidualInput residual;
  float* y;
  int64_t blocks;  // of filters per group
  ConvMemory::Kept* kept;  // null: the weights are prepared for this call alone
  uint64_t stamp;          // of the weights (ConvMemory::Kept::StampFor)

  // This thread's copy of the weights as the kernels read them, sized for this call, or null
  // when the kernels read them as packed.
  PreparedWeights* ThreadsWeights() const {
    if (kernels.prepare_weights == nullptr) return nullptr;
    thread_local PreparedWeights for_one_call;
    PreparedWeights* prepared = kept != nullptr ? &kept->ThreadsCopy() : &for_one_call;
    const auto ranges = static_cast<size_t>(plan.g.groups * blocks);
    const auto words = static_cast<size_t>(plan.g.out_channels * kernels.weight_words * plan.depth);
    if (prepared->stamps.size() < ranges) prepared->stamps.resize(ranges, 0);
    if (prepared->words.size() < words) prepared->words.resize(words);
    return prepared;
  }

  // The weights the kernels read for filters first .. first + count - 1, block `block` of
  // group `group`: prepared when this thread first meets them.
  const uint64_t* KernelWeights(PreparedWeights* prepared, int64_t group, int64_t block, int64_t first,
                                int64_t count) const {
    if (prepared == nullptr) return w + first * plan.depth;
    uint64_t* words = prepared->words.data() + first * kernels.weight_words * plan.depth;
    if (prepared->stamps[group * blocks + block] != stamp) {
      kernels.prepare_weights(w + first * plan.depth, count * plan.depth, words);
      prepared->stamps[group * blocks + block] = stamp;
    }
    return words;
  }

  // The residual value of image n, output channel `first`, the tile's first pixel, or null.
  const float* ResidualAt(int64_t n, int64_t first, int64_t tile) const {
    if (residual.values == nullptr) return nullptr;
    const int64_t skipped = residual.skipped_channels;
    return residual.values + (n * (plan.g.out_channels + skipped) + skipped + first) * plan.spatial +
           tile * kTilePixels;
  }

  // Tasks begin .. end - 1 of (image, group, block of filters, tile), tile fastest.
  void Run(const uint64_t* x, int64_t begin, int64_t end) const {
    const ConvGeometry& g = plan.g;
    thread_local TileBuffers buffers;
    buffers.Fit(plan);
    PreparedWeights* prepared = ThreadsWeights();
    TaskCursor at(plan, blocks, begin);
    for (int64_t task = begin; task < end; ++task, at.Next(plan, blocks)) {
      const TilePanel panel = GatherPanel(plan, x, at, &buffers);
      const int64_t block_first = plan.filters * at.block / blocks;
      const int64_t count = plan.filters * (at.block + 1) / blocks - block_first;
      const int64_t first = at.group * plan.filters + block_first;
      const int64_t offset = (at.n * g.out_channels + first) * plan.spatial + at.tile * kTilePixels;
      const TileOutput output = {scale ? scale + first : nullptr, bias ? bias + first : nullptr,
                                 ResidualAt(at.n, first, at.tile), y + offset, plan.spatial};
      kernels.conv_tile(panel, KernelWeights(prepared, at.group, at.block, first, count), plan.depth, count, output);
    }
  }
};

// Tasks are (image, group, block of filters, tile), tile fastest; thread i takes the i-th
// contiguous share. When an output row is not a whole number of cache lines (14x14 and
// 7x7 maps), the filters are split into as many blocks as there are threads (each of 64
// filters or more), so that thread i's share is block i against every tile and the rows
// it writes are its own: a line two threads write moves between their cores. So are a
// 1x1 layer's (see PackPrivatelyAndConvolve). Otherwise one block: thread i takes the i-th
// band of the image, which it also packed.
int64_t FilterBlocks(const ConvPlan& plan, int team) {
  const bool whole_lines = plan.spatial * sizeof(float) % 64 == 0;
  if (whole_lines && plan.taps > 1) return 1;
  return std::max<int64_t>(1, std::min<int64_t>(team, plan.filters / kMinBlockFilters));
}

void Convolve(const ConvJob& job, const uint64_t* x, int team) {
  const ConvGeometry& g = job.plan.g;
  ParallelFor(g.batch * g.groups * job.blocks * job.plan.tiles, team,
              [&](int64_t begin, int64_t end) { job.Run(x, begin, end); });
}

// A 1x1 layer reads few packed words per output, written by whichever core packed them:
// fetching the half the other core packed cost more than packing it all again, and its
// tiles did not gain from a second thread. So each block of filters is one task that packs
// the whole input into its thread's own buffer (kept from call to call) and convolves it
// (measured: docs/performance.md).
void PackPrivatelyAndConvolve(const ConvJob& job, const ChannelPieces& x, const ChannelThresholds& thresholds, Isa isa,
                              int team) {
  const ConvGeometry& g = job.plan.g;
  const int64_t per_image = g.groups * job.blocks * job.plan.tiles;
  ParallelFor(job.blocks, team, [&](int64_t begin, int64_t end) {
    thread_local std::vector<uint64_t> packed;
    packed.resize(PackedInputWords(g));
    PackPaddedInput(g, x, thresholds, packed.data(), 1, isa);
    for (int64_t block = begin; block < end; ++block)
      for (int64_t n = 0; n < g.batch; ++n)
        for (int64_t group = 0; group < g.groups; ++group) {
          const int64_t first = n * per_image + (group * job.blocks + block) * job.plan.tiles;
          job.Run(packed.data(), first, first + job.plan.tiles);
        }
  });
}

}  // namespace

int64_t PackedInputWords(const ConvGeometry& g) { return PaddedInput(g).Size(g.batch); }

void PackAndConvolve(const ConvGeometry& g, const ChannelPieces& x, const ChannelThresholds& thresholds,
                     uint64_t* packed, const uint64_t* w,
                     const float* scale, const float* bias, const ResidualInput& residual, float* y,
                     int threads, Isa isa, ConvMemory* memory, uint64_t weights_version) {
  ConvMemory::Kept* kept = memory != nullptr ? memory->kept() : nullptr;
  const ConvPlan plan(g, kept);
  const int team = TeamSize(plan, isa, threads);
  const int64_t blocks = FilterBlocks(plan, team);
  const uint64_t stamp = kept != nullptr ? kept->StampFor(w, weights_version, isa, blocks) : next_stamp++;
  const ConvJob job = {plan, BinaryKernelsFor(isa), w, scale, bias, residual, y, blocks, kept, stamp};
  if (job.blocks > 1 && plan.taps == 1) return PackPrivatelyAndConvolve(job, x, thresholds, isa, team);
  PackPaddedInput(g, x, thresholds, packed, team, isa);
  Convolve(job, packed, team);
}

}  // namespace kernels
}  // namespace bmxnet
