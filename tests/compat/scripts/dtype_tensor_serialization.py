"""mindspore.common.dtype, mindspore.common.tensor / parameter, ParameterTuple and
mindspore.train.serialization imported by their module paths, with Tensor conversions."""
import numpy as np
import mindspore.common.dtype as mstype
from mindspore import context
from mindspore.common.tensor import Tensor
from mindspore.common.parameter import Parameter, ParameterTuple
from mindspore.common.initializer import initializer, Normal
from mindspore.train.serialization import save_checkpoint, load_checkpoint

context.set_context(mode=context.PYNATIVE_MODE)
print(context.get_context("mode"), context.get_context("device_target"))

x = Tensor(np.arange(6).reshape(2, 3), mstype.int32)
print(x.dtype, x.float().dtype, x.half().dtype, x.astype(mstype.float64).dtype)
print(x.astype("float16"))
print(mstype.float32, mstype.half, mstype.single, mstype.long, mstype.float_)
print(x.numpy().dtype, x.asnumpy().tolist())
a = np.ones((2, 2), np.float32)
t = Tensor.from_numpy(a)
a[0, 0] = 5
print(t)
t.set_dtype(mstype.float16)
print(t.dtype, t)

w = Parameter(initializer(Normal(0.02), [3, 4], mstype.float32), name="w")
b = Parameter(Tensor(np.zeros(3), mstype.float32), name="b", requires_grad=False)
print(w, b, w.requires_grad, b.requires_grad)
w.requires_grad = False
print(w.requires_grad, w.float().dtype, type(w.copy()).__name__, w.copy().name)
params = ParameterTuple([w, b])
print(type(params).__name__, [p.name for p in params.clone(prefix="ema")])

save_checkpoint([{"name": "w", "data": w}, {"name": "b", "data": b},
                 {"name": "step", "data": Tensor(np.array(7, np.int64))}], "./plain.ckpt")
loaded = load_checkpoint("./plain.ckpt")
print({k: (v.shape, str(v.dtype)) for k, v in loaded.items()})
print(load_checkpoint("./plain.ckpt", filter_prefix="st").keys())
