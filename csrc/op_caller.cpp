// Callers of cnnfast's ops from Python that skip the Python layers of an op
// call when no argument needs a gradient: the caller converts the arguments
// by the op's schema and calls the op through the dispatcher below autograd,
// as torch's own bindings do, for about 1 µs where OpOverload.__call__ and a
// Python autograd check take 3 to 5 µs (and tens of µs when a large tensor
// has just evicted the interpreter from the caches). It answers
// NotImplemented, for cnnfast/ops.py to take the general path, whenever it
// is not sure to behave exactly like that path: an argument needs a
// gradient, is a tensor subclass, is of a type it does not convert, or a
// torch function mode is on. relu and tanh with a gradient have a caller of
// their own, through a C++ autograd node; and cnnfast.relu and cnnfast.tanh
// are builtins that take both callers (below).
#include "op_caller.h"

#include <ATen/PythonTorchFunctionTLS.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/LegacyTypeDispatch.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/python_variable.h>

#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "common/checks.h"
#include "runtime.h"

namespace cnnfast {
namespace {

const char* const kCapsuleName = "cnnfast.op_caller";
const char* const kGradCapsuleName = "cnnfast.autograd_caller";

// torch.nn.Parameter disables __torch_function__, so it converts like a
// plain tensor; every other subclass takes the general path.
PyTypeObject* parameter_type = nullptr;

bool is_plain_tensor(PyObject* object) {
  return THPVariable_CheckExact(object) || Py_TYPE(object) == parameter_type;
}

std::optional<c10::IValue> tensor_value(PyObject* object) {
  if (!is_plain_tensor(object)) return std::nullopt;
  return c10::IValue(THPVariable_Unpack(object));
}

std::optional<c10::IValue> int_value(PyObject* object) {
  if (!PyLong_CheckExact(object)) return std::nullopt;
  const long long value = PyLong_AsLongLong(object);
  if (value == -1 && PyErr_Occurred()) {
    PyErr_Clear();
    return std::nullopt;
  }
  return c10::IValue(static_cast<int64_t>(value));
}

std::optional<c10::IValue> float_value(PyObject* object) {
  if (!PyFloat_CheckExact(object)) return std::nullopt;
  return c10::IValue(PyFloat_AS_DOUBLE(object));
}

std::optional<c10::IValue> bool_value(PyObject* object) {
  if (!PyBool_Check(object)) return std::nullopt;
  return c10::IValue(object == Py_True);
}

std::optional<c10::IValue> string_value(PyObject* object) {
  if (!PyUnicode_Check(object)) return std::nullopt;
  Py_ssize_t size = 0;
  const char* data = PyUnicode_AsUTF8AndSize(object, &size);
  if (data == nullptr) {
    PyErr_Clear();
    return std::nullopt;
  }
  return c10::IValue(std::string(data, static_cast<size_t>(size)));
}

// A tuple or list of ints (int[N], SymInt[]) or of bools (bool[N]).
std::optional<c10::IValue> list_value(PyObject* object, c10::TypeKind element) {
  if (!PyTuple_Check(object) && !PyList_Check(object)) return std::nullopt;
  const Py_ssize_t size = PySequence_Fast_GET_SIZE(object);
  PyObject** items = PySequence_Fast_ITEMS(object);
  if (element == c10::TypeKind::BoolType) {
    c10::List<bool> values;
    for (Py_ssize_t i = 0; i < size; ++i) {
      if (!PyBool_Check(items[i])) return std::nullopt;
      values.push_back(items[i] == Py_True);
    }
    return c10::IValue(values);
  }
  std::vector<int64_t> values;
  values.reserve(static_cast<size_t>(size));
  for (Py_ssize_t i = 0; i < size; ++i) {
    const std::optional<c10::IValue> value = int_value(items[i]);
    if (!value) return std::nullopt;
    values.push_back(value->toInt());
  }
  return c10::IValue(values);
}

// The value of a Python object for an argument of the types cnnfast's
// schemas use, or nothing.
std::optional<c10::IValue> argument_value(PyObject* object, const c10::TypePtr& type) {
  switch (type->kind()) {
    case c10::TypeKind::TensorType:
      return tensor_value(object);
    case c10::TypeKind::IntType:
    case c10::TypeKind::SymIntType:
      return int_value(object);
    case c10::TypeKind::FloatType:
      return float_value(object);
    case c10::TypeKind::BoolType:
      return bool_value(object);
    case c10::TypeKind::StringType:
      return string_value(object);
    case c10::TypeKind::ListType: {
      const c10::TypeKind element = type->containedType(0)->kind();
      if (element == c10::TypeKind::IntType || element == c10::TypeKind::SymIntType ||
          element == c10::TypeKind::BoolType)
        return list_value(object, element);
      return std::nullopt;
    }
    case c10::TypeKind::OptionalType:
      if (object == Py_None) return c10::IValue();
      return argument_value(object, type->containedType(0));
    default:
      return std::nullopt;
  }
}

// The op's arguments on a stack, or nothing where the general path must
// run: a value that does not convert, or a tensor needing a gradient.
std::optional<torch::jit::Stack> argument_stack(const c10::FunctionSchema& schema,
                                                PyObject* const* args, Py_ssize_t count) {
  const std::vector<c10::Argument>& parameters = schema.arguments();
  if (count > static_cast<Py_ssize_t>(parameters.size())) return std::nullopt;
  const bool grad_mode = c10::GradMode::is_enabled();
  torch::jit::Stack stack;
  stack.reserve(parameters.size());
  for (size_t i = 0; i < parameters.size(); ++i) {
    if (static_cast<Py_ssize_t>(i) >= count) {
      if (!parameters[i].default_value()) return std::nullopt;
      stack.push_back(*parameters[i].default_value());
      continue;
    }
    std::optional<c10::IValue> value = argument_value(args[i], parameters[i].type());
    if (!value) return std::nullopt;
    if (grad_mode && value->isTensor() && value->toTensor().requires_grad()) return std::nullopt;
    stack.push_back(std::move(*value));
  }
  return stack;
}

PyObject* returned_values(torch::jit::Stack& stack) {
  if (stack.size() == 1) return THPVariable_Wrap(std::move(stack[0]).toTensor());
  PyObject* values = PyTuple_New(static_cast<Py_ssize_t>(stack.size()));
  if (values == nullptr) return nullptr;
  for (size_t i = 0; i < stack.size(); ++i) {
    PyObject* value = THPVariable_Wrap(std::move(stack[i]).toTensor());
    if (value == nullptr) {
      Py_DECREF(values);
      return nullptr;
    }
    PyTuple_SET_ITEM(values, static_cast<Py_ssize_t>(i), value);
  }
  return values;
}

// The op on the arguments below autograd, or NotImplemented.
PyObject* call_below_autograd(const c10::OperatorHandle& op, PyObject* const* args,
                              Py_ssize_t count) {
  HANDLE_TH_ERRORS
  if (at::impl::torch_function_mode_enabled()) Py_RETURN_NOTIMPLEMENTED;
  std::optional<torch::jit::Stack> stack = argument_stack(op.schema(), args, count);
  if (!stack) Py_RETURN_NOTIMPLEMENTED;
  {
    pybind11::gil_scoped_release no_gil;
    at::AutoDispatchBelowAutograd below_autograd;
    op.callBoxed(*stack);
  }
  return returned_values(*stack);
  END_HANDLE_TH_ERRORS
}

PyObject* call_op(PyObject* capsule, PyObject* const* args, Py_ssize_t count) {
  const auto* op =
      static_cast<const c10::OperatorHandle*>(PyCapsule_GetPointer(capsule, kCapsuleName));
  if (op == nullptr) return nullptr;
  return call_below_autograd(*op, args, count);
}

PyMethodDef call_op_def = {"op_caller",
                           reinterpret_cast<PyCFunction>(reinterpret_cast<void*>(&call_op)),
                           METH_FASTCALL, "Call a cnnfast op below autograd, or NotImplemented."};

void delete_handle(PyObject* capsule) {
  delete static_cast<c10::OperatorHandle*>(PyCapsule_GetPointer(capsule, kCapsuleName));
}

bool load_parameter_type() {
  if (parameter_type != nullptr) return true;
  PyObject* module = PyImport_ImportModule("torch.nn.parameter");
  if (module == nullptr) return false;
  PyObject* type = PyObject_GetAttrString(module, "Parameter");
  Py_DECREF(module);
  if (type == nullptr) return false;
  // The module keeps the class alive for the life of the process.
  parameter_type = reinterpret_cast<PyTypeObject*>(type);
  return true;
}

// A caller maker's argument, the op's name without "cnnfast::", with
// torch.nn.Parameter's type loaded; nothing, with a Python error set, where
// either fails.
std::optional<std::string> caller_op_name(PyObject* name, const char* maker) {
  if (!PyUnicode_Check(name)) {
    PyErr_Format(PyExc_TypeError, "%s: the op's name must be a str", maker);
    return std::nullopt;
  }
  if (!load_parameter_type()) return std::nullopt;
  const char* text = PyUnicode_AsUTF8(name);
  if (text == nullptr) return std::nullopt;
  return std::string(text);
}

// ---- the activations' autograd in C++ ------------------------------------------

// relu and tanh with a gradient: y = op(x) below autograd, y saved, and
// grad_x = backward_op(grad_y, y) -- the formulas cnnfast/ops.py registers
// for them (_save_output, _relu_backward, _tanh_backward) -- as a C++
// autograd node, as torch's own activations have. The Python
// autograd.Function those formulas otherwise run in cost ~25 µs a forward
// and ~20 a backward at AlexNet's first layer (8×96×55×55) on a 2-core CPU,
// where the kernels take ~130 and ~250 µs. (relu on the CPU saves a mask
// instead: ReluSavingMask, below.)
struct ReluOps {
  static constexpr const char* kForward = "cnnfast::relu";
  static constexpr const char* kBackward = "cnnfast::_relu_backward";
};
struct TanhOps {
  static constexpr const char* kForward = "cnnfast::tanh";
  static constexpr const char* kBackward = "cnnfast::_tanh_backward";
};

// grad_x = backward_op(grad_y, saved): under create_graph through the
// backward op's own autograd (double backward); otherwise below it,
// sparing the trip into Python that torch.library's autograd kernel takes
// even to step aside.
template <class Signature, class... Args>
at::Tensor call_backward_op(const c10::TypedOperatorHandle<Signature>& op, const Args&... args) {
  if (c10::GradMode::is_enabled()) return op.call(args...);
  at::AutoDispatchBelowAutograd below_autograd;
  return op.call(args...);
}

template <class Ops>
struct BackwardFromOutput : torch::autograd::Function<BackwardFromOutput<Ops>> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x) {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow(Ops::kForward, "")
                               .template typed<at::Tensor(const at::Tensor&)>();
    at::Tensor y;
    {
      at::AutoDispatchBelowAutograd below_autograd;
      y = op.call(x);
    }
    ctx->save_for_backward({y});
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow(Ops::kBackward, "")
                               .template typed<at::Tensor(const at::Tensor&, const at::Tensor&)>();
    return {call_backward_op(op, grads[0], ctx->get_saved_variables()[0])};
  }
};

// relu on the CPU saves where its gradient passes, a bit per element,
// rather than its output (csrc/ops.cpp, _relu_with_mask): its backward then
// reads 4 1/8 bytes an element where it read 8 (float32): at AlexNet's
// first layer on a 2-core CPU it ran 1.3-1.5x torch's threshold_backward,
// and a forward and backward 1.1-1.3x torch's.
struct ReluSavingMask : torch::autograd::Function<ReluSavingMask> {
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x) {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("cnnfast::_relu_with_mask", "")
                               .typed<std::tuple<at::Tensor, at::Tensor>(const at::Tensor&)>();
    at::Tensor y, mask;
    {
      at::AutoDispatchBelowAutograd below_autograd;
      std::tie(y, mask) = op.call(x);
    }
    ctx->save_for_backward({mask});
    ctx->saved_data["channels_last"] = elementwise_format(y) == at::MemoryFormat::ChannelsLast;
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("cnnfast::_relu_mask_backward", "")
                               .typed<at::Tensor(const at::Tensor&, const at::Tensor&, bool)>();
    return {call_backward_op(op, grads[0], ctx->get_saved_variables()[0],
                             ctx->saved_data["channels_last"].toBool())};
  }
};

// The CPU kernels of _relu_with_mask take what relu's do; under the CUDA
// emulation relu keeps the CUDA kernels' formulas, which the emulation runs.
bool relu_saves_mask(const at::Tensor& x) {
  return x.is_cpu() && !emulating_cuda() &&
         (x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble);
}

using GradCall = at::Tensor (*)(const at::Tensor&);

template <class Ops>
at::Tensor with_grad(const at::Tensor& x) {
  if constexpr (std::is_same_v<Ops, ReluOps>) {
    if (relu_saves_mask(x)) return ReluSavingMask::apply(x);
  }
  return BackwardFromOutput<Ops>::apply(x);
}

// The caller's one argument, a plain tensor, through the C++ node; or
// NotImplemented where the Python path must run (as call_below_autograd
// declines).
PyObject* call_through_node(GradCall call, PyObject* const* args, Py_ssize_t count) {
  HANDLE_TH_ERRORS
  if (at::impl::torch_function_mode_enabled() || count != 1 || !is_plain_tensor(args[0]))
    Py_RETURN_NOTIMPLEMENTED;
  const at::Tensor& x = THPVariable_Unpack(args[0]);
  at::Tensor y;
  {
    pybind11::gil_scoped_release no_gil;
    y = call(x);
  }
  return THPVariable_Wrap(std::move(y));
  END_HANDLE_TH_ERRORS
}

PyObject* call_with_grad(PyObject* capsule, PyObject* const* args, Py_ssize_t count) {
  const auto call = reinterpret_cast<GradCall>(PyCapsule_GetPointer(capsule, kGradCapsuleName));
  if (call == nullptr) return nullptr;
  return call_through_node(call, args, count);
}

PyMethodDef call_with_grad_def = {
    "autograd_caller", reinterpret_cast<PyCFunction>(reinterpret_cast<void*>(&call_with_grad)),
    METH_FASTCALL, "Call a cnnfast activation through its C++ autograd node, or NotImplemented."};

// ---- relu and tanh as builtins -------------------------------------------------

// cnnfast.relu and cnnfast.tanh themselves, for eager calls: the op below
// autograd, else through the C++ autograd node, else the Python function
// (`fallback`, which torch.compile traces) for whatever both decline -- the
// order of ops.py's _run, with no Python on the way. A Python function
// between the caller and the user costs ~10 µs a call at AlexNet's first
// layer on a 2-core CPU, where a 9 MB tensor has just evicted the
// interpreter from the caches. The builtin's self is cnnfast._C, as for a
// module's own functions, so that it prints and pickles as a function.
template <class Ops>
struct ActivationBuiltin {
  static inline std::optional<c10::OperatorHandle> op;
  static inline PyObject* fallback = nullptr;
  static inline std::string doc;
  static inline PyMethodDef def;

  static PyObject* call(PyObject*, PyObject* const* args, Py_ssize_t count, PyObject* kwnames) {
    if (kwnames == nullptr) {
      PyObject* out = call_below_autograd(*op, args, count);
      if (out != Py_NotImplemented) return out;
      Py_DECREF(out);
      // Under CUDA autocast the Python path calls the op through autograd.
      if (c10::GradMode::is_enabled() && !at::autocast::is_autocast_enabled(at::kCUDA)) {
        out = call_through_node(&with_grad<Ops>, args, count);
        if (out != Py_NotImplemented) return out;
        Py_DECREF(out);
      }
    }
    return PyObject_Vectorcall(fallback, args, static_cast<size_t>(count), kwnames);
  }

  // The builtin named `name` (the fallback's docstring and module), made
  // once; the definition and the fallback live as long as the process.
  static PyObject* make(PyObject* module, const char* name, PyObject* new_fallback) {
    HANDLE_TH_ERRORS
    if (fallback == nullptr) {
      PyObject* text = PyObject_GetAttrString(new_fallback, "__doc__");
      if (text == nullptr) return nullptr;
      const char* utf8 = PyUnicode_Check(text) ? PyUnicode_AsUTF8(text) : "";
      if (utf8 != nullptr) doc = std::string(name) + "(x)\n--\n\n" + utf8;
      Py_DECREF(text);
      if (utf8 == nullptr) return nullptr;
      op = c10::Dispatcher::singleton().findSchemaOrThrow(Ops::kForward, "");
      def = {name, reinterpret_cast<PyCFunction>(reinterpret_cast<void*>(&call)),
             METH_FASTCALL | METH_KEYWORDS, doc.c_str()};
    }
    Py_INCREF(new_fallback);
    Py_XSETREF(fallback, new_fallback);
    PyObject* module_name = PyObject_GetAttrString(new_fallback, "__module__");
    if (module_name == nullptr) return nullptr;
    PyObject* builtin = PyCFunction_NewEx(&def, module, module_name);
    Py_DECREF(module_name);
    return builtin;
    END_HANDLE_TH_ERRORS
  }
};

}  // namespace

PyObject* make_op_caller(PyObject*, PyObject* name) {
  HANDLE_TH_ERRORS
  const std::optional<std::string> op_name = caller_op_name(name, "_op_caller");
  if (!op_name) return nullptr;
  auto* handle = new c10::OperatorHandle(
      c10::Dispatcher::singleton().findSchemaOrThrow(("cnnfast::" + *op_name).c_str(), ""));
  PyObject* capsule = PyCapsule_New(handle, kCapsuleName, &delete_handle);
  if (capsule == nullptr) {
    delete handle;
    return nullptr;
  }
  PyObject* caller = PyCFunction_New(&call_op_def, capsule);
  Py_DECREF(capsule);
  return caller;
  END_HANDLE_TH_ERRORS
}

PyObject* make_autograd_caller(PyObject*, PyObject* name) {
  HANDLE_TH_ERRORS
  const std::optional<std::string> op_name = caller_op_name(name, "_autograd_caller");
  if (!op_name) return nullptr;
  GradCall call = nullptr;
  if (*op_name == "relu") call = &with_grad<ReluOps>;
  if (*op_name == "tanh") call = &with_grad<TanhOps>;
  if (call == nullptr) {
    PyErr_Format(PyExc_ValueError, "_autograd_caller: no C++ autograd for cnnfast::%s",
                 op_name->c_str());
    return nullptr;
  }
  PyObject* capsule =
      PyCapsule_New(reinterpret_cast<void*>(call), kGradCapsuleName, nullptr);
  if (capsule == nullptr) return nullptr;
  PyObject* caller = PyCFunction_New(&call_with_grad_def, capsule);
  Py_DECREF(capsule);
  return caller;
  END_HANDLE_TH_ERRORS
}

PyObject* make_activation(PyObject* module, PyObject* args) {
  const char* name = nullptr;
  PyObject* fallback = nullptr;
  if (!PyArg_ParseTuple(args, "sO:_activation", &name, &fallback)) return nullptr;
  if (!PyCallable_Check(fallback)) {
    PyErr_SetString(PyExc_TypeError, "_activation: the fallback must be callable");
    return nullptr;
  }
  if (!load_parameter_type()) return nullptr;
  if (std::string(name) == "relu") return ActivationBuiltin<ReluOps>::make(module, "relu", fallback);
  if (std::string(name) == "tanh") return ActivationBuiltin<TanhOps>::make(module, "tanh", fallback);
  PyErr_Format(PyExc_ValueError, "_activation: no builtin for cnnfast::%s", name);
  return nullptr;
}

}  // namespace cnnfast
