#include <pybind11/pybind11.h>

#include <stdexcept>
#include <thread>

namespace py = pybind11;

void bind_constants(py::module_& m);
void bind_parallel(py::module_& m);
void bind_topk(py::module_& m);
void bind_gbdt(py::module_& m);
void bind_gbdt_leafwise(py::module_& m);
void bind_lfm(py::module_& m);
void bind_sgns(py::module_& m);
void bind_linear(py::module_& m);
void bind_neighbors(py::module_& m);
void bind_encoder(py::module_& m);
void bind_nn(py::module_& m);

PYBIND11_MODULE(_core, m) {
    m.doc() = "recforge compiled kernels (private: use the recforge Python API)";
    m.def(
        "hardware_concurrency",
        []() { return static_cast<int>(std::thread::hardware_concurrency()); },
        "Number of hardware threads std::thread reports (0 if unknown).");
    py::register_exception_translator([](std::exception_ptr p) {
        try {
            if (p) std::rethrow_exception(p);
        } catch (const std::invalid_argument& e) {
            PyErr_SetString(PyExc_ValueError, e.what());
        }
    });
    bind_constants(m);
    bind_parallel(m);
    bind_topk(m);
    bind_gbdt(m);
    bind_gbdt_leafwise(m);
    bind_lfm(m);
    bind_sgns(m);
    bind_linear(m);
    bind_neighbors(m);
    bind_encoder(m);
    bind_nn(m);
}
