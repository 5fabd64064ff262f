#pragma once
// cnnfast._C._op_caller(name): a callable that runs torch.ops.cnnfast.<name>
// below autograd when no argument needs a gradient, and answers
// NotImplemented otherwise (op_caller.cpp says when).
#include <Python.h>

namespace cnnfast {

PyObject* make_op_caller(PyObject* module, PyObject* name);

}  // namespace cnnfast
