// Callers of cnnfast's ops from Python, for the public functions in
// cnnfast/ops.py: the caller converts the arguments by the op's schema and
// calls the op through the dispatcher, as torch's own bindings do -- the
// same route as torch.ops.cnnfast.<op> (autograd, autocast and the
// kernels all on the dispatcher), for about 1 µs a call where
// OpOverload.__call__ takes about 5 (this 2-core CPU). It answers
// NotImplemented, for ops.py to call torch.ops, whenever it is not sure
// to behave exactly like that: an argument is a tensor subclass, is of a
// type it does not convert, or a torch function mode is on. cnnfast.relu
// and cnnfast.tanh are builtins over these callers (below).
//
// Private torch headers: THPVariable_Unpack/Wrap, HANDLE_TH_ERRORS and the
// torch function mode check are torch's own Python binding layer, which no
// public API exposes at this cost; the public route, torch.ops, is what
// these callers fall back to.
#include "op_caller.h"

#include <ATen/PythonTorchFunctionTLS.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/python_variable.h>

#include <optional>
#include <string>
#include <vector>

namespace cnnfast {
namespace {

const char* const kCapsuleName = "cnnfast.op_caller";

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

// The op's arguments on a stack, or nothing where a value does not convert.
std::optional<torch::jit::Stack> argument_stack(const c10::FunctionSchema& schema,
                                                PyObject* const* args, Py_ssize_t count) {
  const std::vector<c10::Argument>& parameters = schema.arguments();
  if (count > static_cast<Py_ssize_t>(parameters.size())) return std::nullopt;
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

// The op on the arguments, or NotImplemented.
PyObject* call_through_dispatcher(const c10::OperatorHandle& op, PyObject* const* args,
                              Py_ssize_t count) {
  HANDLE_TH_ERRORS
  if (at::impl::torch_function_mode_enabled()) Py_RETURN_NOTIMPLEMENTED;
  std::optional<torch::jit::Stack> stack = argument_stack(op.schema(), args, count);
  if (!stack) Py_RETURN_NOTIMPLEMENTED;
  {
    pybind11::gil_scoped_release no_gil;
    op.callBoxed(*stack);
  }
  return returned_values(*stack);
  END_HANDLE_TH_ERRORS
}

PyObject* call_op(PyObject* capsule, PyObject* const* args, Py_ssize_t count) {
  const auto* op =
      static_cast<const c10::OperatorHandle*>(PyCapsule_GetPointer(capsule, kCapsuleName));
  if (op == nullptr) return nullptr;
  return call_through_dispatcher(*op, args, count);
}

PyMethodDef call_op_def = {"op_caller",
                           reinterpret_cast<PyCFunction>(reinterpret_cast<void*>(&call_op)),
                           METH_FASTCALL, "Call a cnnfast op, or NotImplemented."};

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

// ---- relu and tanh as builtins -------------------------------------------------

// cnnfast.relu and cnnfast.tanh themselves, for eager calls: the op's
// caller, else the Python function (`fallback`, which torch.compile
// traces) for whatever the caller declines or keyword arguments. A Python
// function between the caller and the user costs ~10 µs a call at
// AlexNet's first layer on a 2-core CPU, where a 9 MB tensor has just
// evicted the interpreter from the caches. The builtin's self is
// cnnfast._C, as for a module's own functions, so that it prints and
// pickles as a function.
struct ReluOps {
  static constexpr const char* kForward = "cnnfast::relu";
};
struct TanhOps {
  static constexpr const char* kForward = "cnnfast::tanh";
};

template <class Ops>
struct ActivationBuiltin {
  static inline std::optional<c10::OperatorHandle> op;
  static inline PyObject* fallback = nullptr;
  static inline std::string doc;
  static inline PyMethodDef def;

  static PyObject* call(PyObject*, PyObject* const* args, Py_ssize_t count, PyObject* kwnames) {
    if (kwnames == nullptr) {
      PyObject* out = call_through_dispatcher(*op, args, count);
      if (out != Py_NotImplemented) return out;
      Py_DECREF(out);
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
