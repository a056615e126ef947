// Glue shared by the operator files: error reporting into MXNet, shape helpers, scratch.
#ifndef BMXNET_OPERATOR_OP_COMMON_H_
#define BMXNET_OPERATOR_OP_COMMON_H_

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "kernels/sizes.h"
#include "lib_api.h"
#include "op_params.h"

namespace bmxnet {

using mxnet::ext::MXReturnValue;
using mxnet::ext::MXTensor;
using mxnet::ext::OpResource;
using Shapes = std::vector<std::vector<unsigned int>>;

// Replaces the extension API's error list with one message. lib_api keeps every message
// ever added (and shows them all in each later MXNetError), and its list is private; an
// explicit instantiation may name a private member, which is how the list is reached.
void SetErrorMessage(const std::string& message);

// Runs body; any exception becomes the MXNetError text, so nothing escapes into MXNet.
template <typename Body>
MXReturnValue Guard(Body body) {
  try {
    body();
    return mxnet::ext::MX_SUCCESS;
  } catch (const std::exception& error) {
    SetErrorMessage(error.what());
  } catch (...) {
    SetErrorMessage("bmxnet: unknown error");
  }
  return mxnet::ext::MX_FAIL;
}

// MXNet does not hold a graph written by hand to the number of inputs an operator's
// attributes call for (ParseAttrs): every entry point checks the count before indexing.
inline void CheckCount(const char* op, const char* what, size_t expected, size_t given) {
  if (given != expected)
    throw ParamError(std::string(op) + ": these attributes take " + std::to_string(expected) + " " + what + ", got " +
                     std::to_string(given));
}

// inferType / inferShape: `given` inputs.
inline void CheckInputCount(const char* op, size_t expected, size_t given) { CheckCount(op, "inputs", expected, given); }

// forward: the inputs and one output; backward: [output gradient, inputs..., output] and a
// gradient per input.
inline void CheckTensorCounts(const char* op, size_t inputs, bool backward, size_t given_inputs, size_t given_outputs) {
  CheckCount(op, backward ? "backward inputs" : "inputs", backward ? inputs + 2 : inputs, given_inputs);
  CheckCount(op, backward ? "gradients" : "outputs", backward ? inputs : 1, given_outputs);
}

// Whether MXNet runs its operators through oneDNN (the wheel's default); with
// MXNET_MKLDNN_ENABLED=0 its own loops compute Pooling and BatchNorm, in other ways.
// Read once, as MXNet reads it.
inline bool MxnetRunsOneDnn() {
  static const bool runs = [] {
    const char* value = std::getenv("MXNET_MKLDNN_ENABLED");
    return value == nullptr || !(std::strcmp(value, "0") == 0 || std::strcmp(value, "false") == 0 ||
                                 std::strcmp(value, "False") == 0);
  }();
  return runs;
}

// Gluon's deferred initialisation marks unknown dimensions with 0 or -1 (as unsigned).
inline bool DimKnown(unsigned int d) { return d != 0 && d != static_cast<unsigned int>(-1); }

inline bool ShapeKnown(const std::vector<unsigned int>& shape) {
  if (shape.empty()) return false;
  for (unsigned int d : shape)
    if (!DimKnown(d)) return false;
  return true;
}

constexpr int64_t kUnknown = -1;
// A dimension for 64-bit shape arithmetic: its value, or kUnknown (DimKnown; an empty
// array's 0 arrives as lib_api's -1 too).
inline int64_t Dim(unsigned int d) { return DimKnown(d) ? static_cast<int64_t>(d) : kUnknown; }
inline std::vector<int64_t> Dims(const std::vector<unsigned int>& shape) {
  std::vector<int64_t> dims;
  for (unsigned int d : shape) dims.push_back(Dim(d));
  return dims;
}

// A shape worked out in 64 bits (kUnknown where not known yet) as lib_api's unsigned
// dimensions, or a ParamError when it does not fit an MXNet tensor: a dimension cut to 32
// bits would make the kernels loop over more than MXNet allocated. An unknown dimension
// goes back as 0: MXNet hands an empty array's 0 to extensions as -1, and takes a -1 back
// as 4294967295 when it allocates (0 is also "not known yet" in its legacy shape mode).
inline std::vector<unsigned int> FittingShape(const char* op, const char* what, const std::vector<int64_t>& dims) {
  std::vector<unsigned int> shape;
  int64_t elements = 1;
  for (int64_t d : dims) {
    if (d == kUnknown) {
      shape.push_back(0);
      continue;
    }
    elements = kernels::SaturatingMultiply(elements, d);
    if (d < 0 || d > kMaxElements || elements > kMaxElements) {
      std::string text = "(";
      for (size_t i = 0; i < dims.size(); ++i)
        text += (i ? ", " : "") + (dims[i] == kUnknown ? std::string("?") : std::to_string(dims[i]));
      throw ParamError(std::string(op) + ": " + what + " would have shape " + text + (dims.size() == 1 ? ",)" : ")") +
                       ", more than the " + std::to_string(kMaxElements) + " elements an MXNet tensor can hold");
    }
    shape.push_back(static_cast<unsigned int>(d));
  }
  return shape;
}

// Fills an unknown (or partly known) input shape, or checks the known dimensions against
// what the op expects.
inline void ExpectShape(const char* op, const char* what, std::vector<unsigned int>* actual,
                        const std::vector<unsigned int>& expected) {
  bool matches = actual->empty() || actual->size() == expected.size();
  for (size_t i = 0; matches && i < actual->size(); ++i)
    matches = !DimKnown((*actual)[i]) || (*actual)[i] == expected[i];
  if (!matches)
    throw ParamError(std::string(op) + ": " + what + " has shape " + ShapeString(*actual) +
                     ", expected " + ShapeString(expected));
  *actual = expected;
}

// The tensor MXNet allocated against the shape the kernels will write or read: they agree
// unless inferShape and the kernels disagree, which must fail rather than overrun.
inline void CheckTensorShape(const char* op, const char* what, const MXTensor& tensor,
                             const std::vector<int64_t>& expected) {
  if (tensor.shape != expected)
    throw ParamError(std::string(op) + ": " + what + " has shape " + ShapeString(tensor.shape) + ", expected " +
                     ShapeString(expected));
}

// A reduction over no values (no input channels or features) is almost surely a broken
// graph; MXNet's own layers refuse such shapes too.
inline void CheckNotEmpty(const char* op, const char* what, int64_t count, const std::vector<int64_t>& shape) {
  if (count == 0) throw ParamError(std::string(op) + ": data of shape " + ShapeString(shape) + " has no " + what);
}

// The shape (Dim: kUnknown where not known) of NCHW tensors joined along the channels (the
// inputs at `pieces`): the first's, with the others' channels added; their other
// dimensions must be the same.
inline std::vector<int64_t> JoinedChannelsShape(const char* op, const Shapes& shapes,
                                                const std::vector<size_t>& pieces) {
  const std::vector<unsigned int>& first = shapes[pieces[0]];
  std::vector<int64_t> joined = Dims(first);
  for (size_t j = 1; j < pieces.size(); ++j) {
    const std::vector<unsigned int>& piece = shapes[pieces[j]];
    bool fits = piece.size() == 4 && joined.size() == 4;
    for (size_t d = 0; fits && d < 4; ++d)
      fits = d == 1 || Dim(piece[d]) == kUnknown || joined[d] == kUnknown || Dim(piece[d]) == joined[d];
    if (!fits)
      throw ParamError(std::string(op) + ": data piece " + std::to_string(j) + " has shape " + ShapeString(piece) +
                       ", which differs from the data " + ShapeString(first) + " outside dimension 1");
    joined[1] = joined[1] == kUnknown || Dim(piece[1]) == kUnknown ? kUnknown : joined[1] + Dim(piece[1]);
  }
  return joined;
}

// Checks (and fills in unknown, -1) input types against `expected`; outputs are float32.
inline void InferTypes(const char* op, const std::vector<int>& expected,
                       std::vector<int>* in_types, std::vector<int>* out_types) {
  static const char* const kNames[] = {"float32", "float64", "float16", "uint8", "int32", "int8", "int64"};
  for (size_t i = 0; i < in_types->size(); ++i) {
    int& type = (*in_types)[i];
    if (type == -1) type = expected[i];
    if (type != expected[i]) {
      const std::string given = type >= 0 && type <= 6 ? kNames[type] : std::to_string(type);
      throw ParamError(std::string(op) + ": input " + std::to_string(i) + " must be " +
                       kNames[expected[i]] + ", got " + given);
    }
  }
  for (int& type : *out_types) type = mxnet::ext::kFloat32;
}

// All `inputs` inputs float32 (the count checked first), and the outputs.
inline void InferFloat32(const char* op, size_t inputs, std::vector<int>* in_types, std::vector<int>* out_types) {
  CheckInputCount(op, inputs, in_types->size());
  InferTypes(op, std::vector<int>(in_types->size(), mxnet::ext::kFloat32), in_types, out_types);
}

// A packed layer's `inputs` inputs: float32 but for the packed weight (input 1, int64).
inline void InferPackedTypes(const char* op, size_t inputs, std::vector<int>* in_types, std::vector<int>* out_types) {
  CheckInputCount(op, inputs, in_types->size());
  std::vector<int> expected(in_types->size(), mxnet::ext::kFloat32);
  expected[1] = mxnet::ext::kInt64;
  InferTypes(op, expected, in_types, out_types);
}

inline float* Data(std::vector<MXTensor>* tensors, size_t index) {
  return (*tensors)[index].data<float>();
}

// An optional input's data (InputLayout gives -1 when it is absent), or nullptr.
inline float* OptionalData(std::vector<MXTensor>* tensors, int index) {
  return index >= 0 ? Data(tensors, static_cast<size_t>(index)) : nullptr;
}

// Scratch memory from MXNet's pool (host, or device with gpu=true), freed by MXNet after
// the call.
// (lib_api's allocators take an int of bytes.)
template <typename T = float>
inline T* AllocScratch(const OpResource& res, int64_t count, bool gpu = false) {
  if (count <= 0) return nullptr;
  if (count > kMaxElements / static_cast<int64_t>(sizeof(T)))
    throw ParamError("bmxnet: this layer needs a scratch buffer above 2 GiB; use a smaller batch or input");
  const int64_t bytes = count * static_cast<int64_t>(sizeof(T));
  void* memory = gpu ? res.alloc_gpu(static_cast<int>(bytes)) : res.alloc_cpu(static_cast<int>(bytes));
  if (memory == nullptr) throw ParamError(std::string("bmxnet: could not allocate ") + (gpu ? "GPU " : "") +
                                          "scratch memory");
  return static_cast<T*>(memory);
}

template <typename T = float>
inline T* AllocGpuScratch(const OpResource& res, int64_t count) {
  return AllocScratch<T>(res, count, true);
}

}  // namespace bmxnet

#endif  // BMXNET_OPERATOR_OP_COMMON_H_
