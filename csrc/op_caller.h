#pragma once
// cnnfast._C._op_caller(name): a callable that runs torch.ops.cnnfast.<name>
// below autograd when no argument needs a gradient, and answers
// NotImplemented otherwise (op_caller.cpp says when).
#include <Python.h>

namespace cnnfast {

PyObject* make_op_caller(PyObject* module, PyObject* name);

// cnnfast._C._autograd_caller(name), for relu and tanh: a callable that runs
// the activation with a gradient through a C++ autograd node, and answers
// NotImplemented where the Python path must run (op_caller.cpp).
PyObject* make_autograd_caller(PyObject* module, PyObject* name);

// cnnfast._C._activation(name, fallback), for relu and tanh: the public
// function as a builtin that calls the op through the two callers above
// and calls `fallback` (the Python function) where both decline.
PyObject* make_activation(PyObject* module, PyObject* args);

}  // namespace cnnfast
