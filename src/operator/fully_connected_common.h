// What the trainable and the packed QFullyConnected share: how the data is flattened into
// rows of features, and the output shape.
#ifndef BMXNET_OPERATOR_FULLY_CONNECTED_COMMON_H_
#define BMXNET_OPERATOR_FULLY_CONNECTED_COMMON_H_

#include <string>
#include <utility>
#include <vector>

#include "op_common.h"

namespace bmxnet {

constexpr const char* kFullyConnectedOp = "QFullyConnected";

// The features of data of this shape (kUnknown when not known): the last dimension, or
// with flatten all but the first. Checks the data has enough dimensions.
inline int64_t FeaturesOf(bool flatten, const std::vector<unsigned int>& data) {
  const char* op = kFullyConnectedOp;
  if (data.size() < (flatten ? 2u : 1u))
    throw ParamError(std::string(op) + ": data shape " + ShapeString(data) +
                     (flatten ? " needs at least 2 dimensions" : " needs at least 1 dimension"));
  FittingShape(op, "data", Dims(data));  // also bounds the features
  int64_t features = Dim(data.back());
  for (size_t d = 1; flatten && d + 1 < data.size(); ++d)
    features = features == kUnknown || Dim(data[d]) == kUnknown ? kUnknown
                                                                : kernels::SaturatingMultiply(features, Dim(data[d]));
  return features;
}

// The output shape for data of shape `data`.
inline std::vector<unsigned int> DenseOutput(bool flatten, int64_t hidden, const std::vector<unsigned int>& data) {
  std::vector<int64_t> out;
  for (size_t d = 0; d < (flatten ? 1 : data.size() - 1); ++d) out.push_back(Dim(data[d]));
  out.push_back(hidden);
  return FittingShape(kFullyConnectedOp, "output", out);
}

// (rows, features) of a forward or backward call, checked against the tensors MXNet passed:
// `data` is the data tensor, `result` the tensor of the output's shape.
inline std::pair<int64_t, int64_t> CheckedRows(bool flatten, int64_t hidden, const MXTensor& data,
                                               const MXTensor& result) {
  const size_t split = flatten ? 1 : data.shape.size() - 1;  // rows: the dimensions before, features: from there
  int64_t rows = 1, features = 1;
  for (size_t d = 0; d < data.shape.size(); ++d) (d < split ? rows : features) *= data.shape[d];
  CheckNotEmpty(kFullyConnectedOp, "features", features, data.shape);
  std::vector<int64_t> out = flatten ? std::vector<int64_t>{data.shape[0]} : data.shape;
  if (flatten) out.push_back(hidden); else out.back() = hidden;
  CheckTensorShape(kFullyConnectedOp, "output", result, out);
  return {rows, features};
}

}  // namespace bmxnet

#endif  // BMXNET_OPERATOR_FULLY_CONNECTED_COMMON_H_
