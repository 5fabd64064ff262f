// The Python module cnnfast._C. Loading it registers every op (static
// initializers in the op files); it also exposes the build facts, the
// emulation switch and the ops' fast callers (op_caller.h).
#include <Python.h>

#include <vector>

#include "common/kernel_table.h"
#include "op_caller.h"
#include "runtime.h"

namespace {

PyObject* set_emulate_cuda(PyObject*, PyObject* arg) {
  const int on = PyObject_IsTrue(arg);
  if (on < 0) return nullptr;
  cnnfast::set_emulating_cuda(on != 0);
  Py_RETURN_NONE;
}

PyObject* emulate_cuda(PyObject*, PyObject*) {
  return PyBool_FromLong(cnnfast::emulating_cuda() ? 1 : 0);
}

// The kernel table as a list of (name, header, emulated launches) tuples.
PyObject* cuda_kernels(PyObject*, PyObject*) {
  const std::vector<cnnfast::KernelEntry> table = cnnfast::cuda_kernel_table();
  PyObject* list = PyList_New(static_cast<Py_ssize_t>(table.size()));
  if (list == nullptr) return nullptr;
  for (size_t i = 0; i < table.size(); ++i) {
    PyObject* entry = Py_BuildValue("(ssL)", table[i].name.c_str(), table[i].header.c_str(),
                                    static_cast<long long>(table[i].emulated_launches));
    if (entry == nullptr) {
      Py_DECREF(list);
      return nullptr;
    }
    PyList_SET_ITEM(list, static_cast<Py_ssize_t>(i), entry);
  }
  return list;
}

PyMethodDef methods[] = {
    {"_set_emulate_cuda", set_emulate_cuda, METH_O, "Switch the CUDA emulation on or off."},
    {"_emulate_cuda", emulate_cuda, METH_NOARGS, "Whether the CUDA emulation is on."},
    {"_cuda_kernels", cuda_kernels, METH_NOARGS, "The CUDA kernels and their emulation."},
    {"_op_caller", cnnfast::make_op_caller, METH_O, "A fast caller of a cnnfast op."},
    {"_activation", cnnfast::make_activation, METH_VARARGS,
     "relu or tanh as a builtin, with a Python fallback."},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", "cnnfast's compiled ops", -1, methods};

}  // namespace

PyMODINIT_FUNC PyInit__C() {
  PyObject* module = PyModule_Create(&module_def);
  if (module == nullptr) return nullptr;
  PyModule_AddStringConstant(module, "torch_version", cnnfast::built_torch_version());
  PyModule_AddIntConstant(module, "cuda_compiled", cnnfast::cuda_compiled() ? 1 : 0);
  PyModule_AddStringConstant(module, "cuda_archs", cnnfast::cuda_archs());
  PyModule_AddStringConstant(module, "cpu_isa", cnnfast::cpu_isa());
  return module;
}
