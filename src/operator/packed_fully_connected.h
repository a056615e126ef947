// The packed QFullyConnected (binarized_weights_only=True), which model-converter writes: its
// entry points, which q_fully_connected.cc's registration calls for such nodes.
#ifndef BMXNET_OPERATOR_PACKED_FULLY_CONNECTED_H_
#define BMXNET_OPERATOR_PACKED_FULLY_CONNECTED_H_

#include <vector>

#include "op_state.h"

namespace bmxnet {
namespace packed_fully_connected {

size_t InputCount(const Attributes& attrs);
void InferType(const Attributes& attrs, std::vector<int>* in_types, std::vector<int>* out_types);
void InferShape(const Attributes& attrs, Shapes* in_shapes, Shapes* out_shapes);
CustomStatefulOp* CreateState(const Attributes& attrs, bool gpu);

}  // namespace packed_fully_connected
}  // namespace bmxnet

#endif  // BMXNET_OPERATOR_PACKED_FULLY_CONNECTED_H_
