#pragma once
// The ops' autograd, in C++ on the dispatcher's Autograd key (as
// torchvision registers its ops): each derivative is written once, in
// csrc/autograd/<op>.cpp, and serves eager calls, torch.compile
// (AOTAutograd traces these kernels over fake tensors) and opcheck alike.
// A forward calls its op below autograd (below_autograd) and saves what
// backward needs; a backward calls the backward op
// through the dispatcher, so that under create_graph the backward op's own
// autograd applies: relu's and tanh's have a derivative, the others raise
// NotImplementedError (NoDoubleBackward).
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/GradMode.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace cnnfast {
namespace autograd {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using Activation = std::optional<std::string_view>;

// An op names itself and its signature in a struct: kName
// ("cnnfast::relu"), Signature, and for a backward op kPublic, the public
// function it serves ("relu").
template <class Signature>
c10::TypedOperatorHandle<Signature> typed_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

// The op's typed handle, looked up once.
template <class Op>
const c10::TypedOperatorHandle<typename Op::Signature>& op_handle() {
  static const auto op = typed_op<typename Op::Signature>(Op::kName);
  return op;
}

// The op on the arguments below autograd, as every forward calls its op
// (Function::apply turns grad mode off but leaves the Autograd keys on).
template <class Signature, class... Args>
auto below_autograd(const c10::TypedOperatorHandle<Signature>& op, Args&&... args) {
  at::AutoDispatchBelowADInplaceOrView below;
  return op.call(std::forward<Args>(args)...);
}

// Whether a call records a graph: grad mode on and a tensor argument that
// requires a gradient.
inline bool requires_grad_of(const at::Tensor& t) { return t.defined() && t.requires_grad(); }
inline bool requires_grad_of(const std::optional<at::Tensor>& t) {
  return t.has_value() && requires_grad_of(*t);
}
template <class T>
bool requires_grad_of(const T&) {
  return false;
}
template <class... Args>
bool needs_gradient(const Args&... args) {
  return c10::GradMode::is_enabled() && (requires_grad_of(args) || ...);
}

// Non-tensor arguments kept for backward in ctx->saved_data.
inline std::vector<int64_t> saved_ints(AutogradContext* ctx, const char* key) {
  return ctx->saved_data[key].toIntVector();
}

inline std::vector<c10::SymInt> saved_sym_sizes(AutogradContext* ctx, const char* key) {
  std::vector<c10::SymInt> sizes;
  for (const c10::IValue& size : ctx->saved_data[key].toListRef()) sizes.push_back(size.toSymInt());
  return sizes;
}

inline void save_activation(AutogradContext* ctx, Activation activation) {
  ctx->saved_data["activation"] =
      activation ? c10::IValue(std::string(*activation)) : c10::IValue();
}

// The saved activation; it views ctx->saved_data, which outlives backward.
inline Activation saved_activation(AutogradContext* ctx) {
  const c10::IValue& value = ctx->saved_data["activation"];
  if (value.isNone()) return std::nullopt;
  return std::string_view(value.toStringRef());
}

// An op's results as a Function's outputs, and back.
inline variable_list as_list(const at::Tensor& out) { return {out}; }
inline variable_list as_list(const variable_list& outs) { return outs; }
template <class... T>
variable_list as_list(const std::tuple<T...>& outs) {
  return std::apply([](const auto&... out) { return variable_list{out...}; }, outs);
}
template <class Return>
Return from_list(const variable_list& outs) {
  if constexpr (std::is_same_v<Return, at::Tensor>) {
    return outs[0];
  } else if constexpr (std::tuple_size_v<Return> == 2) {
    return {outs[0], outs[1]};
  } else {
    return {outs[0], outs[1], outs[2]};
  }
}

// The (x, weight, bias) gradients that `mask` asks for, then undefined ones
// for the other `arguments` of the forward.
inline variable_list masked_gradients(const std::array<bool, 3>& mask,
                                      const std::tuple<at::Tensor, at::Tensor, at::Tensor>& grads,
                                      size_t arguments) {
  variable_list result(arguments);
  if (mask[0]) result[0] = std::get<0>(grads);
  if (mask[1]) result[1] = std::get<1>(grads);
  if (mask[2]) result[2] = std::get<2>(grads);
  return result;
}

// The Autograd-key kernel of Op whose autograd is the Function Fn:
// Fn::apply where a call records a graph, else the op below autograd, as
// torch's own autograd kernels skip what only backward needs.
template <class Fn, class Op, class Signature = typename Op::Signature>
struct AutogradKernel;

template <class Fn, class Op, class Return, class... Args>
struct AutogradKernel<Fn, Op, Return(Args...)> {
  static Return call(Args... args) {
    if (!needs_gradient(args...)) return below_autograd(op_handle<Op>(), args...);
    return from_list<Return>(as_list(Fn::apply(args...)));
  }
};

// The autograd of a backward op without a derivative of its own: a
// gradient through its results raises NotImplementedError naming the
// public function.
template <class Op, class Signature = typename Op::Signature>
struct NoDerivative;

template <class Op, class Return, class... Args>
struct NoDerivative<Op, Return(Args...)> : torch::autograd::Function<NoDerivative<Op, Return(Args...)>> {
  static variable_list forward(AutogradContext*, Args... args) {
    return as_list(below_autograd(op_handle<Op>(), args...));
  }
  static variable_list backward(AutogradContext*, variable_list) {
    TORCH_CHECK_NOT_IMPLEMENTED(false, "cnnfast.", Op::kPublic,
                                ": double backward (a gradient of a gradient) is not "
                                "implemented; only relu and tanh support it");
  }
};

// The backward op's Autograd-key kernel, which backward formulas call too.
template <class Op>
using NoDoubleBackward = AutogradKernel<NoDerivative<Op>, Op>;

}  // namespace autograd
}  // namespace cnnfast
