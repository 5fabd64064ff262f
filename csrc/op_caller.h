#pragma once
// cnnfast._C._op_caller(name): a callable that runs torch.ops.cnnfast.<name>
// through the dispatcher, and answers NotImplemented where torch.ops must
// run instead (op_caller.cpp says when).
#include <Python.h>

namespace cnnfast {

PyObject* make_op_caller(PyObject* module, PyObject* name);

// cnnfast._C._activation(name, fallback), for relu and tanh: the public
// function as a builtin that calls the op through its caller and calls
// `fallback` (the Python function) where the caller declines.
PyObject* make_activation(PyObject* module, PyObject* args);

}  // namespace cnnfast
