#include "op_params.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cerrno>
#include <cstdlib>
#include <string_view>

#include "kernels/channel_pieces.h"

namespace bmxnet {
namespace {

// Reads one operator's attributes. Graph nodes parse theirs when MXNet makes their state,
// which imperative calls and hybridize() without static_shape do at every call: the reader
// allocates little and formats nothing unless it fails.
class AttributeReader {
 public:
  AttributeReader(const char* op, const Attributes& attrs) : op_(op), attrs_(attrs) { known_.reserve(24); }

  bool Has(const char* key) const { return attrs_.count(key) > 0; }

  std::string Text(const char* key, const char* fallback) {
    const std::string* value = Find(key);
    return value == nullptr ? fallback : Trim(*value);
  }

  bool Bool(const char* key, bool fallback) {
    const std::string* given = Find(key);
    if (given == nullptr) return fallback;
    const std::string value = Lower(Trim(*given));
    if (value == "true" || value == "1") return true;
    if (value == "false" || value == "0") return false;
    Fail(key, value, "expected True or False");
  }

  int64_t Int(const char* key, int64_t fallback, int64_t lo, int64_t hi) {
    const std::string* given = Find(key);
    if (given == nullptr) return fallback;
    const std::string value = Trim(*given);
    const int64_t number = ToInt(key, value);
    if (number < lo || number > hi)
      Fail(key, value, "must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return number;
  }

  float Float(const char* key, float fallback) {
    const std::string* given = Find(key);
    if (given == nullptr) return fallback;
    const std::string value = Trim(*given);
    char* end = nullptr;
    errno = 0;
    const float number = value.empty() ? 0.0f : std::strtof(value.c_str(), &end);
    if (value.empty() || end != value.c_str() + value.size() || errno == ERANGE || !std::isfinite(number))
      Fail(key, value, "expected a finite number");
    return number;
  }

  // Accepts "3", "(3, 3)", "[3,3]", "(3,)"; a single number is repeated `size` times.
  std::vector<int64_t> Tuple(const char* key, std::vector<int64_t> fallback, size_t size, int64_t lo,
                             int64_t hi = kMaxDimension) {
    const std::string* given = Find(key);
    if (given == nullptr) return fallback;
    const std::string value = Trim(*given);
    std::vector<int64_t> items;
    items.reserve(size);
    std::string item;
    for (size_t i = 0; i <= value.size(); ++i) {
      const char c = i < value.size() ? value[i] : ',';
      if (c == '(' || c == ')' || c == '[' || c == ']' || std::isspace(static_cast<unsigned char>(c))) continue;
      if (c != ',') {
        item += c;
        continue;
      }
      if (!item.empty()) items.push_back(ToInt(key, item));
      item.clear();
    }
    if (items.size() == 1) items.assign(size, items[0]);
    if (items.size() != size) Fail(key, value, "expected " + std::to_string(size) + " values");
    for (int64_t v : items)
      if (v < lo || v > hi)
        Fail(key, value, "values must be in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return items;
  }

  template <typename Enum>
  Enum Choice(const char* key, const char* fallback, const std::vector<std::pair<std::string, Enum>>& choices) {
    const std::string value = Lower(Text(key, fallback));
    std::string names;
    for (const auto& choice : choices) {
      if (choice.first == value) return choice.second;
      names += (names.empty() ? "" : ", ") + choice.first;
    }
    Fail(key, value, "expected one of " + names);
  }

  // Unknown keys are typos; MXNet's own attributes start with "__".
  void RejectUnknown() const {
    for (const auto& entry : attrs_) {
      if (entry.first.rfind("__", 0) == 0 || Known(entry.first)) continue;
      std::vector<std::string> known(known_.begin(), known_.end());
      std::sort(known.begin(), known.end());
      known.erase(std::unique(known.begin(), known.end()), known.end());
      std::string names;
      for (const auto& name : known) names += (names.empty() ? "" : ", ") + name;
      throw ParamError(std::string(op_) + ": unknown parameter '" + entry.first + "' (known: " + names + ")");
    }
  }

  [[noreturn]] void Fail(const std::string& key, const std::string& value, const std::string& why) const {
    throw ParamError(std::string(op_) + ": invalid " + key + "='" + value + "': " + why);
  }

 private:
  // The key's value, or null; either way the key is known from now on.
  const std::string* Find(const char* key) {
    known_.push_back(key);
    auto it = attrs_.find(key);
    return it == attrs_.end() ? nullptr : &it->second;
  }
  bool Known(std::string_view key) const {
    return std::find(known_.begin(), known_.end(), key) != known_.end();
  }
  static std::string Trim(const std::string& s) {
    size_t begin = s.find_first_not_of(" \t'\"");
    size_t end = s.find_last_not_of(" \t'\"");
    return begin == std::string::npos ? "" : s.substr(begin, end - begin + 1);
  }
  static std::string Lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
  }
  // `text` (a value, or one item of a tuple) as an integer.
  int64_t ToInt(const char* key, const std::string& text) const {
    char* end = nullptr;
    errno = 0;
    const long long number = text.empty() ? 0 : std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || end != text.c_str() + text.size()) Fail(key, text, "expected an integer");
    if (errno == ERANGE) Fail(key, text, "out of range");
    return number;
  }

  const char* op_;
  const Attributes& attrs_;
  std::vector<std::string_view> known_;  // keys asked for (string literals)
};

const std::vector<std::pair<std::string, Scaling>> kScalings = {{"none", Scaling::kNone},
                                                                {"xnor", Scaling::kXnor}};

// Packed weights are single bits and the kernel packs the data to single bits.
void CheckPackedBits(const AttributeReader& reader, int64_t act_bit, int64_t weight_bit) {
  if (act_bit != 1 || weight_bit != 1)
    reader.Fail("binarized_weights_only", "True",
                "needs act_bit=1 and weight_bit=1 (got " + std::to_string(act_bit) + " and " +
                    std::to_string(weight_bit) + ")");
}

QActivationParams ReadQActivation(const Attributes& attrs) {
  AttributeReader reader("QActivation", attrs);
  QActivationParams p;
  p.spec.bits = static_cast<int>(reader.Int("act_bit", 1, 1, 32));
  p.backward_only = reader.Bool("backward_only", false);
  p.spec.method = reader.Choice<kernels::Estimator>(
      "method", "ste",
      {{"ste", kernels::Estimator::kSte},
       {"approx_sign", kernels::Estimator::kApproxSign},
       {"swish_sign", kernels::Estimator::kSwishSign}});
  p.spec.clip = reader.Float("clip", 1.0f);
  if (p.spec.clip <= 0.0f) reader.Fail("clip", reader.Text("clip", ""), "must be > 0");
  p.spec.beta = reader.Float("beta", 5.0f);
  if (p.spec.beta <= 0.0f) reader.Fail("beta", reader.Text("beta", ""), "must be > 0");
  reader.RejectUnknown();
  return p;
}

// The attributes both kinds of QConvolution take.
void ReadConvolution(AttributeReader& reader, ConvolutionParams* p) {
  if (!reader.Has("kernel")) throw ParamError("QConvolution: missing required parameter 'kernel'");
  if (!reader.Has("num_filter"))
    throw ParamError("QConvolution: missing required parameter 'num_filter'");
  p->kernel = reader.Tuple("kernel", {}, 2, 1);
  p->stride = reader.Tuple("stride", p->stride, 2, 1);
  p->dilate = reader.Tuple("dilate", p->dilate, 2, 1);
  p->pad = reader.Tuple("pad", p->pad, 2, 0);
  p->num_filter = reader.Int("num_filter", 0, 1, 1 << 24);
  p->num_group = reader.Int("num_group", 1, 1, 1 << 24);
  if (p->num_filter % p->num_group != 0)
    reader.Fail("num_filter", std::to_string(p->num_filter),
                "must be divisible by num_group=" + std::to_string(p->num_group));
  p->no_bias = reader.Bool("no_bias", true);
  p->scaling = reader.Choice<Scaling>("scaling", "none", kScalings);
  p->pad_value = reader.Float("pad_value", 0.0f);
  if (p->pad_value != 0.0f && p->pad_value != -1.0f)
    reader.Fail("pad_value", reader.Text("pad_value", ""), "expected 0 or -1");
  reader.Bool("binarized_weights_only", false);  // the caller chose the kind by it
  std::string layout = reader.Text("layout", "NCHW");
  if (layout != "NCHW" && layout != "None") reader.Fail("layout", layout, "only NCHW is supported");
}

// The packed-only attributes a trainable layer was given (a hand-written graph): one line
// naming the first. Counts are (name, the value that means "not used").
void RejectPackedOnly(AttributeReader& reader, std::initializer_list<const char*> flags,
                      std::initializer_list<std::pair<const char*, int64_t>> counts) {
  const std::string why = "needs binarized_weights_only=True (model-converter sets both)";
  for (const char* key : flags)
    if (reader.Bool(key, false)) reader.Fail(key, "True", why);
  for (const auto& count : counts) {
    const int64_t value = reader.Int(count.first, count.second, 0, kMaxDimension);
    if (value > count.second) reader.Fail(count.first, std::to_string(value), why);
  }
}

QConvolutionParams ReadQConvolution(const Attributes& attrs) {
  AttributeReader reader("QConvolution", attrs);
  QConvolutionParams p;
  ReadConvolution(reader, &p);
  p.act_bit = static_cast<int>(reader.Int("act_bit", 1, 1, 32));
  p.weight_bit = static_cast<int>(reader.Int("weight_bit", 1, 1, 32));
  RejectPackedOnly(reader, {"residual", "data_threshold"},
                   {{"residual_offset", 0}, {"data_pieces", 1}, {"packed_channels", 0}});
  reader.RejectUnknown();
  return p;
}

PackedConvolutionParams ReadPackedConvolution(const Attributes& attrs) {
  AttributeReader reader("QConvolution", attrs);
  PackedConvolutionParams p;
  ReadConvolution(reader, &p);
  CheckPackedBits(reader, reader.Int("act_bit", 1, 1, 32), reader.Int("weight_bit", 1, 1, 32));
  p.residual = reader.Bool("residual", false);
  p.residual_offset = reader.Int("residual_offset", 0, 0, kMaxDimension);
  if (p.residual_offset > 0 && !p.residual)
    reader.Fail("residual_offset", std::to_string(p.residual_offset), "needs residual=True");
  p.data_threshold = reader.Bool("data_threshold", false);
  p.data_pieces = reader.Int("data_pieces", 1, 1, kernels::kMaxChannelPieces);
  p.packed_channels = reader.Int("packed_channels", 0, 0, kMaxDimension);
  reader.RejectUnknown();
  return p;
}

ChannelConcatParams ReadChannelConcat(const Attributes& attrs) {
  AttributeReader reader("ChannelConcat", attrs);
  if (!reader.Has("num_args")) throw ParamError("ChannelConcat: missing required parameter 'num_args'");
  ChannelConcatParams p;
  p.count = static_cast<int>(reader.Int("num_args", 1, 1, 1 << 16));
  p.take_channels = reader.Tuple("take_channels", std::vector<int64_t>(p.count, 0), p.count, 0);
  reader.RejectUnknown();
  return p;
}

PlainPoolingParams ReadPlainPooling(const Attributes& attrs) {
  AttributeReader reader("PlainPooling", attrs);
  PlainPoolingParams p;
  p.global_pool = reader.Bool("global_pool", false);
  if (!p.global_pool && !reader.Has("kernel"))
    throw ParamError("PlainPooling: missing required parameter 'kernel' (or global_pool=True)");
  p.kernel = reader.Tuple("kernel", p.kernel, 2, 1);
  p.stride = reader.Tuple("stride", p.stride, 2, 1);
  p.pad = reader.Tuple("pad", p.pad, 2, 0);
  for (int d = 0; d < 2 && !p.global_pool; ++d)
    if (p.pad[d] >= p.kernel[d])
      reader.Fail("pad", reader.Text("pad", ""), "must be smaller than the kernel " + ShapeString(p.kernel));
  p.max = reader.Choice<bool>("pool_type", "max", {{"max", true}, {"avg", false}});
  p.full_convention = reader.Choice<bool>("pooling_convention", "valid", {{"valid", false}, {"full", true}});
  p.count_include_pad = reader.Bool("count_include_pad", true);
  p.data_pieces = reader.Int("data_pieces", 1, 1, kernels::kMaxChannelPieces);
  p.channels_last = reader.Choice<bool>("layout", "NCHW", {{"nchw", false}, {"nhwc", true}, {"none", false}});
  if (p.channels_last && p.data_pieces != 1)
    reader.Fail("layout", "NHWC", "takes one data input (data_pieces=1)");
  reader.RejectUnknown();
  return p;
}

PlainBatchNormParams ReadPlainBatchNorm(const Attributes& attrs) {
  AttributeReader reader("PlainBatchNorm", attrs);
  PlainBatchNormParams p;
  p.eps = reader.Float("eps", p.eps);
  if (p.eps <= 0.0f) reader.Fail("eps", reader.Text("eps", ""), "must be positive");
  p.fix_gamma = reader.Bool("fix_gamma", p.fix_gamma);
  p.blocked = reader.Bool("blocked", p.blocked);
  p.channels_last = reader.Bool("channels_last", p.channels_last);
  p.relu = reader.Choice<bool>("act_type", "none", {{"none", false}, {"relu", true}});
  reader.RejectUnknown();
  return p;
}

// The attributes both kinds of QFullyConnected take, into p (either struct).
template <typename Params>
void ReadFullyConnected(AttributeReader& reader, Params* p) {
  if (!reader.Has("num_hidden"))
    throw ParamError("QFullyConnected: missing required parameter 'num_hidden'");
  p->num_hidden = reader.Int("num_hidden", 0, 1, 1 << 30);
  p->no_bias = reader.Bool("no_bias", true);
  p->flatten = reader.Bool("flatten", true);
  p->scaling = reader.Choice<Scaling>("scaling", "none", kScalings);
  reader.Bool("binarized_weights_only", false);  // the caller chose the kind by it
}

QFullyConnectedParams ReadQFullyConnected(const Attributes& attrs) {
  AttributeReader reader("QFullyConnected", attrs);
  QFullyConnectedParams p;
  ReadFullyConnected(reader, &p);
  p.act_bit = static_cast<int>(reader.Int("act_bit", 1, 1, 32));
  p.weight_bit = static_cast<int>(reader.Int("weight_bit", 1, 1, 32));
  RejectPackedOnly(reader, {}, {{"packed_features", 0}});
  reader.RejectUnknown();
  return p;
}

PackedFullyConnectedParams ReadPackedFullyConnected(const Attributes& attrs) {
  AttributeReader reader("QFullyConnected", attrs);
  PackedFullyConnectedParams p;
  ReadFullyConnected(reader, &p);
  CheckPackedBits(reader, reader.Int("act_bit", 1, 1, 32), reader.Int("weight_bit", 1, 1, 32));
  p.packed_features = reader.Int("packed_features", 0, 0, kMaxDimension);
  reader.RejectUnknown();
  return p;
}

}  // namespace

QActivationParams ParseQActivation(const Attributes& attrs) { return ReadQActivation(attrs); }
QConvolutionParams ParseQConvolution(const Attributes& attrs) { return ReadQConvolution(attrs); }
PackedConvolutionParams ParsePackedConvolution(const Attributes& attrs) { return ReadPackedConvolution(attrs); }
QFullyConnectedParams ParseQFullyConnected(const Attributes& attrs) { return ReadQFullyConnected(attrs); }
PackedFullyConnectedParams ParsePackedFullyConnected(const Attributes& attrs) { return ReadPackedFullyConnected(attrs); }
ChannelConcatParams ParseChannelConcat(const Attributes& attrs) { return ReadChannelConcat(attrs); }
PlainPoolingParams ParsePlainPooling(const Attributes& attrs) { return ReadPlainPooling(attrs); }
PlainBatchNormParams ParsePlainBatchNorm(const Attributes& attrs) { return ReadPlainBatchNorm(attrs); }

bool IsPackedLayer(const char* op, const Attributes& attrs) {
  return AttributeReader(op, attrs).Bool("binarized_weights_only", false);
}

InputLayout LayoutOf(const QConvolutionParams& p) {
  InputLayout layout;
  if (!p.no_bias) layout.bias = layout.count++;
  return layout;
}

InputLayout LayoutOf(const QFullyConnectedParams& p) {
  InputLayout layout;
  if (!p.no_bias) layout.bias = layout.count++;
  return layout;
}

InputLayout LayoutOf(const PackedFullyConnectedParams& p) {
  InputLayout layout;
  if (p.scaling == Scaling::kXnor) layout.scale = layout.count++;
  if (!p.no_bias) layout.bias = layout.count++;
  return layout;
}

InputLayout LayoutOf(const PackedConvolutionParams& p) {
  InputLayout layout;
  if (p.scaling == Scaling::kXnor) layout.scale = layout.count++;
  if (!p.no_bias) layout.bias = layout.count++;
  if (p.data_threshold) layout.threshold = layout.count++;
  if (p.residual) layout.residual = layout.count++;
  if (p.data_pieces > 1) {
    layout.pieces = layout.count;
    layout.count += static_cast<int>(p.data_pieces) - 1;
  }
  return layout;
}

template <typename T>
static std::string JoinShape(const std::vector<T>& shape) {
  std::string text = "(";
  for (size_t i = 0; i < shape.size(); ++i) {
    // lib_api's unknown dimension, or the -1 of 64-bit shape arithmetic (op_common.h)
    const bool unknown = static_cast<int64_t>(shape[i]) == 0xFFFFFFFFLL || static_cast<int64_t>(shape[i]) == -1;
    text += (i ? ", " : "") + (unknown ? std::string("?") : std::to_string(shape[i]));
  }
  return text + (shape.size() == 1 ? ",)" : ")");
}

std::string ShapeString(const std::vector<int64_t>& shape) { return JoinShape(shape); }
std::string ShapeString(const std::vector<unsigned int>& shape) { return JoinShape(shape); }

}  // namespace bmxnet
