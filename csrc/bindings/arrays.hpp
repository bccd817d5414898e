// The NumPy array types of the bindings: C-contiguous arrays of one dtype. Bound with
// py::arg(...).noconvert(), an argument of another dtype or layout raises TypeError instead of
// being copied silently.
#pragma once

#include <pybind11/numpy.h>

#include <cstdint>

namespace recforge::bindings {

template <class T>
using CArray = pybind11::array_t<T, pybind11::array::c_style>;

using F32 = CArray<float>;
using F64 = CArray<double>;
using I32 = CArray<int32_t>;
using I64 = CArray<int64_t>;

}  // namespace recforge::bindings
