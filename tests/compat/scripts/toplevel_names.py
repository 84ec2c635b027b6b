"""MindSpore scripts that use top-level names: mindspore.set_context, mindspore.GRAPH_MODE,
mindspore.context, mindspore.ParameterTuple, mindspore.common.dtype aliases."""
import numpy as np
import mindspore as ms

ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
print(ms.get_context("mode"), ms.context.get_context("device_target"), ms.PYNATIVE_MODE)
p = ms.Parameter(ms.Tensor(np.ones(2), ms.float32), name="p")
print(ms.ParameterTuple([p])[0].name, ms.common.dtype.half, ms.float16 == ms.common.dtype.half)
net = ms.nn.SequentialCell([ms.nn.Dense(2, 2), ms.nn.BatchNorm1d(2)])
print([q.name for q in net.get_parameters()])
ms.set_seed(7)
print(ms.get_seed(), ms.half, ms.single, ms.long, ms.float_, repr(ms.double), ms.dtype.float32)
a = np.arange(3, dtype=np.float32)
t = ms.from_numpy(a)
a[0] = 5
print(t, ms.is_tensor(t), ms.pytype_to_dtype(float), ms.dtype_to_nptype(ms.int8).__name__)
print(ms.get_current_device())
