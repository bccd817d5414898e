// The NumPy array types of the bindings: C-contiguous arrays of one dtype. Bound with
// py::arg(...).noconvert(), an argument of another dtype or layout raises TypeError instead of
// being copied silently.
#pragma once

#include <pybind11/numpy.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace recforge::bindings {

template <class T>
using CArray = pybind11::array_t<T, pybind11::array::c_style>;

using F32 = CArray<float>;
using F64 = CArray<double>;
using I32 = CArray<int32_t>;
using I64 = CArray<int64_t>;

// Throws std::invalid_argument (ValueError in Python) unless ok. No std::string is built unless it
// fails, so the structural checks may call it in loops.
inline void require(bool ok, const char* msg) {
    if (!ok) throw std::invalid_argument(msg);
}

// A new 1-D array holding a copy of v.
template <class T>
CArray<T> to_array(const std::vector<T>& v) {
    CArray<T> a(static_cast<pybind11::ssize_t>(v.size()));
    std::copy(v.begin(), v.end(), a.mutable_data());
    return a;
}

}  // namespace recforge::bindings
