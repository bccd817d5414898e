"""The one cast of a scipy CSR matrix to the arrays the kernels take."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


def csr_kernel_arrays(
    m: sp.csr_matrix, data_dtype=np.float32
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(indptr int64, indices int32, data data_dtype)``: C-contiguous views or copies of ``m``.

    ``m`` must already be a valid CSR matrix (see :func:`recforge._validation.check_csr_matrix`).

    Examples
    --------
    >>> import numpy as np, scipy.sparse as sp
    >>> from recforge.kernels._csr import csr_kernel_arrays
    >>> indptr, indices, data = csr_kernel_arrays(sp.csr_matrix(np.eye(2)), np.float64)
    >>> indptr.dtype, indices.dtype, data.dtype
    (dtype('int64'), dtype('int32'), dtype('float64'))
    """
    return (
        np.ascontiguousarray(m.indptr, dtype=np.int64),
        np.ascontiguousarray(m.indices, dtype=np.int32),
        np.ascontiguousarray(m.data, dtype=data_dtype),
    )
