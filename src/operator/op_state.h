// Every operator is a lib_api stateful operator: MXNet makes one state per graph node and
// passes it to each forward and backward call of that node, so the node's attributes are
// parsed once, and a node can keep what it prepared (the packed convolution's masks and
// weights). MXNet keeps a state for as long as the bound graph lives (symbol executors,
// Gluon's hybridize(static_alloc=True, static_shape=True)); imperative calls and other
// hybridize() settings make a new one per call.
#ifndef BMXNET_OPERATOR_OP_STATE_H_
#define BMXNET_OPERATOR_OP_STATE_H_

#include <type_traits>
#include <utility>
#include <vector>

#include "op_common.h"

namespace bmxnet {

using mxnet::ext::CustomStatefulOp;
using mxnet::ext::MXContext;

// What a node runs: Node is what the node keeps (`const Params` for most operators).
template <typename Node>
using NodeFunction = void (*)(Node&, std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                              const OpResource& res);

// A node's state: what it keeps and its forward and backward functions on one device (for
// backward, inputs are [output gradient, forward inputs..., output] and outputs the
// gradients of the forward inputs). Errors reach MXNet as one line (Guard).
template <typename Node>
class NodeState final : public CustomStatefulOp {
 public:
  NodeState(std::remove_const_t<Node> node, NodeFunction<Node> forward, NodeFunction<Node> backward)
      : node_(std::move(node)), forward_(forward), backward_(backward) {}

  MXReturnValue Forward(std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                        const OpResource& res) override {
    return Guard([&] { forward_(node_, inputs, outputs, res); });
  }

  MXReturnValue Backward(std::vector<MXTensor>* inputs, std::vector<MXTensor>* outputs,
                         const OpResource& res) override {
    return Guard([&] { backward_(node_, inputs, outputs, res); });
  }

 private:
  Node node_;
  NodeFunction<Node> forward_, backward_;
};

template <typename Node>
CustomStatefulOp* MakeState(std::remove_const_t<Node> node, NodeFunction<Node> forward, NodeFunction<Node> backward) {
  return CustomStatefulOp::create<NodeState<Node>>(std::move(node), forward, backward);
}

// lib_api's createOpState of an operator whose nodes keep their parsed parameters.
template <typename Params, Params (*parse)(const Attributes&), NodeFunction<const Params> forward,
          NodeFunction<const Params> backward>
MXReturnValue CreateState(const Attributes& attrs, const MXContext&, const Shapes&, const std::vector<int>,
                          CustomStatefulOp** state) {
  return Guard([&] { *state = MakeState<const Params>(parse(attrs), forward, backward); });
}

}  // namespace bmxnet

#endif  // BMXNET_OPERATOR_OP_STATE_H_
