"""Snippets run both by real MindSpore (golden/make_golden.py) and by mindckpt (test_scenarios.py).

Each snippet runs with ``ms`` (the package), ``nn``, ``np``, ``mstype`` and ``OrderedDict`` in
scope and leaves a JSON-able ``out``. The golden file holds MindSpore's ``out`` for each; the
test runs the same text with ``ms`` bound to mindckpt and compares. No MindSpore op is used
(only construction, naming, dtype and numpy conversions), so the values are exact.

Random initial values are compared by statistics (``layer_stats``), not by value.
"""

from __future__ import annotations

PRELUDE = """
def params(cell):
    return [[path, p.name, list(p.shape), str(p.dtype), p.requires_grad]
            for path, p in cell.parameters_and_names()]

def names(cell):
    return [p.name for p in cell.get_parameters()]

def tinfo(t):
    return [type(t).__name__, str(t.dtype), list(t.shape)]

def err(f):
    try:
        f()
    except Exception as e:  # noqa: BLE001
        return [type(e).__name__, str(e)]
    return None
"""

# Parameter names, shapes, dtypes and requires_grad of each layer, as MindSpore makes them.
LAYERS = [
    "nn.Dense(3, 4)",
    "nn.Dense(3, 4, has_bias=False)",
    "nn.Dense(3, 4, dtype=ms.float16)",
    "nn.Conv1d(3, 4, 5)",
    "nn.Conv1d(3, 4, 5, has_bias=True)",
    "nn.Conv1d(4, 6, 3, group=2, has_bias=True)",
    "nn.Conv2d(3, 4, 5)",
    "nn.Conv2d(3, 4, (2, 3), has_bias=True)",
    "nn.Conv2d(4, 8, 3, group=4)",
    "nn.BatchNorm1d(6)",
    "nn.BatchNorm2d(6)",
    "nn.BatchNorm2d(6, affine=False)",
    "nn.BatchNorm2d(3, dtype=ms.float16)",
    "nn.LayerNorm((5,))",
    "nn.LayerNorm([4, 5], begin_norm_axis=-2, begin_params_axis=-2)",
    "nn.Embedding(10, 4)",
    "nn.Embedding(10, 4, padding_idx=2)",
    "nn.SequentialCell([nn.Dense(2, 3), nn.ReLU(), nn.Dense(3, 1)])",
    "nn.SequentialCell(nn.Dense(2, 3), nn.BatchNorm1d(3))",
    "nn.SequentialCell(OrderedDict([('fc', nn.Dense(2, 3)), ('act', nn.ReLU()), ('out', nn.Dense(3, 1))]))",
    "nn.CellList([nn.Dense(2, 3), nn.Conv2d(1, 2, 3)])",
]

# Initial-value statistics (large enough to estimate the distribution).
LAYER_STATS = [
    "nn.Dense(256, 128, has_bias=True)",
    "nn.Conv1d(16, 32, 5, has_bias=True)",
    "nn.Conv2d(16, 32, 3, has_bias=True)",
    "nn.Embedding(400, 64)",
    "nn.BatchNorm2d(64)",
    "nn.LayerNorm((64,))",
    "nn.Dense(64, 32, weight_init='normal', bias_init='zeros')",
    "nn.Dense(64, 32, weight_init='xavier_uniform', bias_init='ones')",
]

# mindspore.common.initializer: statistics of random initializers (float32, 3 draws pooled) ...
INIT_STATS = [
    "initializer('normal', (200, 300))",
    "initializer(Normal(0.02, 1.0), (200, 300))",
    "initializer('truncatednormal', (200, 300))",
    "initializer(TruncatedNormal(0.5, 0.0, -0.6, 0.6), (200, 300))",
    "initializer('uniform', (200, 300))",
    "initializer(Uniform(0.3), [200, 300])",
    "initializer('he_uniform', (64, 32, 3, 3))",
    "initializer(HeUniform(negative_slope=0.2, mode='fan_out'), (64, 32, 3, 3))",
    "initializer(HeUniform(nonlinearity='tanh'), (300, 200))",
    "initializer('he_normal', (300, 200))",
    "initializer(HeNormal(mode='fan_out', nonlinearity='relu'), (64, 32, 3, 3))",
    "initializer('xavier_uniform', (300, 200))",
    "initializer(XavierNormal(gain=2), (300, 200))",
    "initializer('orthogonal', (200, 300))",
    "initializer(Sparse(0.5, 0.1), (200, 300))",
    "initializer(VarianceScaling(2.0, 'fan_avg', 'uniform'), (300, 200))",
    "initializer(VarianceScaling(0.5, 'fan_out', 'untruncated_normal'), (300, 200))",
    "initializer('normal', (200, 300), ms.float16)",
]
# ... and deterministic ones, compared by value.
INIT_EXACT = [
    "initializer('zeros', (2, 3))", "initializer('ones', 4, ms.int32)",
    "initializer(2.5, [2, 2])", "initializer(Constant(-1), (3,), ms.float16)",
    "initializer('identity', (2, 3))", "initializer(Dirac(2), (4, 2, 3))",
    "initializer(7, (2,), ms.int64)",
]

SNIPPETS = {
    "embedding_padding_row": """
e = nn.Embedding(10, 4, padding_idx=2)
out = e.embedding_table.asnumpy()[2].tolist()
""",
    "sequential_ops": """
s = nn.SequentialCell([nn.Dense(2, 3)])
s.append(nn.Dense(3, 4))
a = names(s)
b = [type(s[0]).__name__, type(s[0:1]).__name__, names(s[1:]), len(s)]
s[0] = nn.Dense(2, 2)
c = names(s)
del s[0]
d = names(s)
e = err(lambda: s[5])
f = err(lambda: nn.SequentialCell(1))
out = [a, b, c, d, e, f, bool(nn.SequentialCell())]
""",
    "celllist_ops": """
cl = nn.CellList([nn.Dense(2, 3)])
cl.append(nn.Dense(3, 4))
cl.extend([nn.Dense(1, 1)])
a = names(cl)
cl.insert(1, nn.Dense(7, 7))
b = names(cl)
del cl[0]
c = names(cl)
cl[0] = nn.Dense(5, 5)
d = names(cl)
e = [type(x).__name__ for x in cl]
f = err(lambda: cl.extend(nn.Dense(1, 1)))
g = err(lambda: nn.CellList([1]))
h = err(lambda: cl["a"])
out = [a, b, c, d, e, f, g, h, len(cl), len(cl[1:])]
""",
    "nested_containers": """
class Net(nn.Cell):
    def __init__(self):
        super().__init__()
        self.layers = nn.CellList([nn.Dense(2, 3), nn.Dense(3, 4)])
        self.seq = nn.SequentialCell([nn.Dense(2, 2), nn.BatchNorm1d(2)])
        self.bn = nn.BatchNorm2d(3)

net = Net()
a = names(net)
net.layers.append(nn.Dense(1, 1))
b = names(net)
out = [a, b, [n for n, _ in net.cells_and_names()], list(net.parameters_dict())]
""",
    "standalone_bn_names": """
bn = nn.BatchNorm2d(2)
out = [params(bn), [n for n, _ in bn.parameters_and_names()], list(bn.parameters_dict())]
""",
    "state_dict": """
class Net(nn.Cell):
    def __init__(self):
        super().__init__()
        self.fc = nn.Dense(2, 3)
        self.bn = nn.BatchNorm1d(3)
        self.register_buffer("step", ms.Tensor(np.array([0], np.int64)))
        self.shared = self.fc.weight

net = Net()
sd = net.state_dict()
a = [[k, type(v).__name__, getattr(v, "name", None)] for k, v in sd.items()]
b = [type(sd).__name__, list(net.state_dict(prefix="m."))]
n2 = Net()
w = n2.fc.weight
r = n2.load_state_dict({k: ms.Tensor(np.full(v.shape, 2, np.float64)) for k, v in sd.items()})
c = [repr(r), type(r).__name__, list(r), n2.fc.weight is w, str(n2.fc.weight.dtype),
     n2.fc.weight.asnumpy().tolist(), str(n2.step.dtype), n2.step.asnumpy().tolist()]
r2 = n2.load_state_dict({"fc.weight": ms.Tensor(np.ones((3, 2), np.float32)),
                         "extra": ms.Tensor(np.ones(1, np.float32))}, strict=False)
d = [repr(r2), r2.missing_keys, r2.unexpected_keys]
e = err(lambda: n2.load_state_dict({"fc.weight": ms.Tensor(np.ones((3, 2), np.float32)),
                                    "extra.x": ms.Tensor(np.ones(1))}))
f = err(lambda: n2.load_state_dict({"fc.weight": ms.Tensor(np.ones((2, 2), np.float32))},
                                   strict=False))
g = err(lambda: n2.load_state_dict({"fc.weight": np.ones((3, 2), np.float32)}, strict=False))
h = err(lambda: n2.load_state_dict([1]))
i = err(lambda: net.state_dict(prefix=1))
j = [[n, tinfo(t)] for n, t in net.named_buffers()]
out = [a, b, c, d, e, f, g, h, i, j, [n for n, _ in net.parameters_and_names()]]
""",
    "cell_registration": """
class Net(nn.Cell):
    def __init__(self):
        super().__init__()
        self.w = ms.Parameter(ms.Tensor(np.ones(2, np.float32)), name="w")
        self.fc = nn.Dense(2, 2)

net = net0 = Net()
net.w = ms.Tensor(np.full(2, 3, np.float32))
a = [type(net.w).__name__, net.w.asnumpy().tolist(), names(net)]
b = err(lambda: setattr(net, "w", 5))
c = err(lambda: setattr(net, "fc", 5))
net.insert_child_to_cell("extra", nn.Dense(1, 1))
d = names(net)
e = err(lambda: net.insert_child_to_cell("a.b", nn.Dense(1, 1)))
f = err(lambda: net.insert_child_to_cell("w", nn.Dense(1, 1)))
net.update_parameters_name("top.")
g = names(net)
net.fc = None
h = [names(net), [n for n, _ in net.cells_and_names()]]
i = [p.name for p in net.trainable_params()], [p.name for p in net.untrainable_params()]
out = [a, b, c, d, e, f, g, h, i]
""",
    "insert_param_and_tuples": """
class Net(nn.Cell):
    def __init__(self):
        super().__init__()
        self.fc = nn.Dense(2, 2)
        self.plain = 3

net = Net()
P = ms.Parameter
a = err(lambda: net.insert_param_to_cell("", P(ms.Tensor(np.ones(1, np.float32)), name="x")))
b = err(lambda: net.insert_param_to_cell("a.b", P(ms.Tensor(np.ones(1, np.float32)), name="x")))
c = err(lambda: net.insert_param_to_cell("fc", P(ms.Tensor(np.ones(1, np.float32)), name="x")))
d = err(lambda: net.insert_param_to_cell("y", 5))
net.insert_param_to_cell("a.b", P(ms.Tensor(np.ones(1, np.float32)), name="kept"),
                         check_name_contain_dot=False)
net.plain = P(ms.Tensor(np.ones(1, np.float32)), name="plain_param")
e = err(lambda: setattr(net, "fc", P(ms.Tensor(np.ones(1, np.float32)), name="z")))
net.tup = ms.ParameterTuple([P(ms.Tensor(np.ones(1, np.float32)), name="t1"),
                             P(ms.Tensor(np.ones(2, np.float32)), name="t2")])
f = [names(net), [n for n, _ in net.parameters_and_names()], type(net.tup).__name__]
net.update_parameters_name("pre.")
g = names(net)
out = [a, b, c, d, e, f, g]
""",
    "layer_errors": """
out = [err(f) for f in (
    lambda: nn.Embedding(10, 4, padding_idx=10), lambda: nn.Embedding(10, 4, padding_idx=-1),
    lambda: nn.LayerNorm(5), lambda: nn.Conv2d(3, 4, 3, group=2),
    lambda: nn.Conv1d(3, 4, 3, group=2), lambda: nn.Conv1d(3, 4, (3, 3)),
    lambda: nn.Conv2d(3, 4, "a"), lambda: nn.BatchNorm2d(0), lambda: nn.BatchNorm2d(2.5),
    lambda: nn.BatchNorm1d(2, momentum=1.5), lambda: nn.Dense(0, 3), lambda: nn.Dense(-1, 3),
    lambda: nn.Dense(2.0, 3), lambda: nn.Dense(2, 0))]
""",
    "initializer_errors": """
I = ms.common.initializer
initializer, Normal, VarianceScaling, HeUniform = (I.initializer, I.Normal, I.VarianceScaling,
                                                   I.HeUniform)
t = ms.Tensor(np.ones((2, 2), np.float32))
out = [initializer(t, (2, 2)) is t, err(lambda: initializer(t)),
       err(lambda: initializer(t, (3, 2))), err(lambda: initializer(np.ones(2), (2,))),
       err(lambda: initializer("bogus", (2,))), err(lambda: initializer("normal", (2, 0))),
       err(lambda: initializer("normal", (2, -1))), err(lambda: initializer(Normal(-1.0), (2,))),
       err(lambda: VarianceScaling(0)), err(lambda: VarianceScaling(mode="x")),
       err(lambda: initializer(HeUniform(nonlinearity="elu"), (2, 2))),
       err(lambda: initializer("xavier_uniform", (3,))),
       err(lambda: initializer("identity", (2, 2, 2))),
       str(initializer("normal", (2, 2), ms.float16).dtype),
       list(initializer("uniform", 3).shape)]
lazy = initializer(I.One(), [2], ms.float32)
first = lazy.init_data()
out += [first is lazy, first.asnumpy().tolist(), err(lambda: lazy.init_data()),
        err(lambda: ms.Tensor(np.ones(2, np.float32)).init_data()),
        ms.Tensor(shape=(2, 3), dtype=ms.float32, init=I.One()).init_data().asnumpy().tolist(),
        err(lambda: ms.Tensor(shape=(2, 3), init=I.One())),
        err(lambda: ms.Tensor(np.ones(2), init=I.One())),
        ms.Parameter(initializer("normal", (2, 2)), name="w").init_data().name]
""",
    "reprs": r"""
import re
cells = [nn.Dense(2, 3), nn.Dense(2, 3, has_bias=False), nn.Conv1d(3, 4, 5),
         nn.Conv2d(3, 4, (2, 3), has_bias=True, pad_mode="valid"), nn.Conv2d(3, 4, 3, stride=2),
         nn.BatchNorm1d(6), nn.BatchNorm2d(6, affine=False, momentum=0.99), nn.LayerNorm((5,)),
         nn.Embedding(10, 4), nn.Embedding(10, 4, padding_idx=1), nn.ReLU(), nn.Flatten(),
         nn.MaxPool2d(kernel_size=2, stride=2), nn.SequentialCell([nn.Dense(2, 3), nn.ReLU()]),
         nn.CellList([nn.Dense(2, 3)]), nn.Cell()]

class Net(nn.Cell):
    def __init__(self):
        super().__init__()
        self.fc = nn.Dense(2, 2)
        self.seq = nn.SequentialCell(OrderedDict([("a", nn.Dense(2, 2)), ("b", nn.ReLU())]))
        self.bn = nn.BatchNorm2d(2)

def norm(text):  # initializer objects print their module and address
    return re.sub(r"<[\w.]+\.(\w+) object at 0x[0-9a-fA-F]+>", r"<\1>", text)

bn = nn.BatchNorm2d(3, momentum=0.7)
out = [norm(repr(c)) for c in cells] + [norm(str(Net())), round(bn.momentum, 12)]
""",
    "check_names_apply": """
class Net(nn.Cell):
    def __init__(self):
        super().__init__()
        self.a = ms.Parameter(ms.Tensor(np.ones(1, np.float32)), name="same")
        self.b = ms.Parameter(ms.Tensor(np.ones(1, np.float32)), name="same")

seen = []
s = nn.SequentialCell([nn.Dense(1, 1), nn.SequentialCell([nn.ReLU()])])
r = s.apply(lambda c: seen.append(type(c).__name__))
out = [err(lambda: Net().check_names()), s.check_names(), seen, r is s]
""",
    "activations": """
klasses = ["ReLU", "ReLU6", "Tanh", "Sigmoid", "GELU", "FastGelu", "ELU", "Softmax",
           "LogSoftmax", "SiLU", "HSwish", "HSigmoid", "LeakyReLU", "Softsign", "Mish", "Softmin",
           "LogSigmoid", "Hardtanh", "HShrink", "SoftShrink", "Tanhshrink", "RReLU", "Softmax2d",
           "PReLU"]
a = [repr(getattr(nn, k)()) for k in klasses]
b = [repr(nn.Dropout(p=0.3)), repr(nn.Dropout(keep_prob=0.7)), repr(nn.Dropout())]
c = []
for act in ("relu", "tanh", "prelu", "preluExt", "gelu", "leakyrelu"):
    d = nn.Dense(2, 3, activation=act)
    c.append([repr(d), params(d), [n for n, _ in d.cells_and_names()]])
d = nn.Dense(2, 3, activation=nn.Tanh())
e = [repr(d), err(lambda: nn.Dense(2, 3, activation=5)), err(lambda: nn.Dense(2, 3, activation="foo")),
     err(lambda: nn.Dense(2, 3, activation="threshold"))]
p = nn.PReLU(channel=3, w=0.1)
f = [params(p), p.w.asnumpy().tolist(), params(nn.PReLU())]
s = nn.SequentialCell([nn.Dense(2, 2, activation="prelu"), nn.Dropout(p=0.1), nn.PReLU()])
g = [names(s), repr(s)]
out = [a, b, c, e, f, g]
""",
    "to_float_set_grad": """
net = nn.SequentialCell([nn.Dense(2, 2), nn.BatchNorm1d(2)])
r = net.to_float(ms.float16)
e = err(lambda: net.to_float(ms.int32))
out = [r is net, [str(p.dtype) for p in net.get_parameters()], e[0], e[1].split("and value")[1],
       net.set_grad(), nn.Dense(1, 1).set_grad() is not None]
""",
    "seed": """
C = ms.common
first = C.get_seed()
C.set_seed(3)
a = C.initializer.initializer("normal", (4,)).init_data().asnumpy().tolist()
C.set_seed(3)
b = C.initializer.initializer("normal", (4,)).init_data().asnumpy().tolist()
n1 = np.random.rand()
C.set_seed(3)
np.random.randint(low=1, high=(1 << 62))  # what one initializer draw consumes
arr = np.zeros(2, np.float32)
shared = C.from_numpy(arr)
arr[0] = 4
f = [shared.asnumpy().tolist(), C.is_tensor(shared), C.is_tensor(arr),
     C.is_tensor(ms.Parameter(shared, name="p"))]
out = [f, first, C.get_seed(), a == b, n1 != np.random.rand(),
       err(lambda: C.set_seed(-1)), err(lambda: C.set_seed(1.5)), err(lambda: C.set_seed(True))]
""",
    "tensor_conversions": """
t = ms.Tensor(np.arange(6, dtype=np.int32).reshape(2, 3))
a = [tinfo(x) for x in (t.float(), t.half(), t.double(), t.long(), t.bool(), t.bfloat16(),
                        t.short(), t.byte(), ms.Tensor(np.ones(2, np.float32)).int())]
f = ms.Tensor(np.ones(2, np.float32))
g = f.float(); g.asnumpy()[0] = 3
b = [f.float() is f, f.asnumpy().tolist(), f.astype(ms.float32, copy=False) is f,
     f.astype(ms.float32) is f]
c = [tinfo(t.astype(x)) for x in (ms.float16, np.float16, "float16", "half", "long", float, int, bool)]
d = err(lambda: t.astype("foo"))
arr = np.arange(3, dtype=np.float32)
tf = ms.Tensor.from_numpy(arr); arr[0] = 7
n1 = tf.asnumpy(); n1[1] = 9
n2 = tf.numpy(); n2[2] = 11
a2 = np.arange(3, dtype=np.float32); tc = ms.Tensor(a2)
e = [tf.asnumpy().tolist(), type(tf.numpy()).__name__, str(tf.numpy().dtype), tinfo(tc)]
g2 = err(lambda: ms.Tensor.from_numpy([1, 2]))
nc = np.ones((3, 4), np.float32)[:, ::2]; tn = ms.Tensor.from_numpy(nc); nc[0, 0] = 5
h = [tn.asnumpy()[0, 0].item(), tinfo(tn), tinfo(ms.Tensor.from_numpy(np.ones(2)))]
x = ms.Tensor(np.array([1.0, 2.5], np.float32)); r = x.set_dtype(ms.float16)
i = [str(x.dtype), x.asnumpy().tolist(), str(r), str(x.asnumpy().dtype)]
x = ms.Tensor(np.array([1.0, 2.5], np.float32)); x.set_dtype(ms.int32)
j = [str(x.dtype), x.asnumpy().tolist()]
k = [tinfo(ms.Tensor([1, 2])), tinfo(ms.Tensor([1.0])), tinfo(ms.Tensor(1)), tinfo(ms.Tensor(1.5)),
     tinfo(ms.Tensor(True)), tinfo(ms.Tensor(np.float64(2)))]
l = [ms.Tensor(np.array(3.5, np.float32)).item(), ms.Tensor(np.arange(3)).tolist(),
     ms.Tensor(np.array([True, False])).float().asnumpy().tolist()]
out = [a, b, c, d, e, g2, h, i, j, k, l]
""",
    "parameter_conversions": """
p = ms.Parameter(ms.Tensor(np.ones((2, 2), np.float32)), name="w")
a = [tinfo(p.float()), tinfo(p.half()), tinfo(p.astype(ms.float16)), type(p.numpy()).__name__,
     type(p.asnumpy()).__name__]
q = p.copy(); q.asnumpy()[0, 0] = 6
b = [type(q).__name__, q.name, q.requires_grad, p.asnumpy()[0, 0].item()]
p2 = ms.Parameter(ms.Tensor(np.ones(2, np.float32)), name="v", requires_grad=False)
c2 = p2.clone(); c2.asnumpy()[0] = 6
c = [c2.name, c2.requires_grad, p2.asnumpy().tolist(), p2.clone(init="zeros").asnumpy().tolist()]
p.requires_grad = False
d = [p.requires_grad, err(lambda: setattr(p, "requires_grad", 1))]
y = ms.Parameter(ms.Tensor(np.array([1.0, 2.5], np.float32)), name="y")
r = y.set_dtype(ms.float16)
e = [str(y.dtype), repr(y), str(r), y.asnumpy().tolist()]
n = p.asnumpy(); n[0, 0] = 8
f = [p.asnumpy()[0, 0].item(), str(ms.Parameter(np.ones(2, np.float32), name="a").dtype)]
g = err(lambda: ms.Parameter(True, name="c"))
out = [a, b, c, d, e, f, g]
""",
    "parameter_set_data": """
p = ms.Parameter(ms.Tensor(np.ones((2, 2), np.float32)), name="w")
p.set_data(ms.Tensor(np.full((2, 2), 3, np.float64)))
a = [str(p.dtype), p.asnumpy().tolist(), str(p.asnumpy().dtype)]
p.set_data(ms.Tensor(np.arange(3, dtype=np.int32)))
b = [str(p.dtype), list(p.shape), p.asnumpy().tolist()]
p.set_data(2.5)
c = [str(p.dtype), list(p.shape), p.asnumpy().tolist()]
q = ms.Parameter(ms.Tensor(np.ones(2, np.int32)), name="q")
d = [err(lambda: q.set_data(1.5)), err(lambda: q.set_data(np.ones(2)))]
q.set_data(ms.Tensor(np.array([1.7, -2.7], np.float32)))
e = [str(q.dtype), q.asnumpy().tolist(), q.set_data(7) is q, q.asnumpy().tolist()]
class Net(nn.Cell):
    def __init__(self):
        super().__init__()
        self.w = ms.Parameter(ms.Tensor(np.ones(2, np.float16)), name="w")
net = Net()
net.w = ms.Tensor(np.array([1.5, 2.5]))
f = [str(net.w.dtype), net.w.asnumpy().tolist()]
out = [a, b, c, d, e, f]
""",
    "parameter_tuple": """
P = ms.Parameter
pt = ms.ParameterTuple([P(ms.Tensor(np.ones(1, np.float32)), name="a"),
                        P(ms.Tensor(np.ones(1, np.float32)), name="b")])
c = pt.clone("new")
a = [type(pt).__name__, isinstance(pt, tuple), [x.name for x in c], type(c).__name__]
w = P(ms.Tensor(np.ones(1, np.float32)), name="w")
b = [len(ms.ParameterTuple([w, w])),
     err(lambda: ms.ParameterTuple([P(ms.Tensor(np.ones(1, np.float32)), name="a"),
                                    P(ms.Tensor(np.ones(1, np.float32)), name="a")]))[0],
     err(lambda: ms.ParameterTuple([1])), err(lambda: pt.clone("bad prefix!"))]
out = [a, b]
""",
    "dtype_module": """
names = ["bool_", "int8", "byte", "int16", "short", "int32", "intc", "int64", "long", "intp",
         "uint8", "ubyte", "uint16", "ushort", "uint32", "uintc", "uint64", "uintp", "float16",
         "half", "float32", "single", "float64", "double", "bfloat16", "qint4x2", "float_",
         "int_", "uint", "number", "float", "int", "bool"]
a = [[n, str(getattr(mstype, n))] for n in names]
b = [mstype.float32 == ms.float32, mstype.single is mstype.float32, mstype.float_ == mstype.float32,
     mstype.float32 in (mstype.float16, mstype.float32), mstype.half == mstype.float16]
c = [[str(t) for t in getattr(mstype, n)] for n in ("int_type", "uint_type")]
d = [[n, getattr(mstype, n).is_floating_point, getattr(mstype, n).is_signed,
      getattr(mstype, n).itemsize] for n in ("float32", "int8", "uint8", "bool_", "bfloat16", "float16")]
e = [str(mstype.pytype_to_dtype(x)) for x in (int, float, bool, np.int8, np.float32, np.float64)]
f = err(lambda: mstype.pytype_to_dtype("x"))
g = [mstype.dtype_to_pytype(x).__name__ for x in (mstype.int32, mstype.float16, mstype.bool_, mstype.uint8)]
h = [mstype.dtype_to_nptype(x).__name__ for x in (mstype.float32, mstype.int64, mstype.bool_)]
i = err(lambda: ms.Tensor(np.ones(2), mstype.float_))
j = [repr(getattr(mstype, n)) for n in ("float32", "qint4x2", "bool_", "uint8", "bfloat16",
                                          "float_", "int_", "uint", "number")]
k = [repr(mstype.int_type), str(list(mstype.uint_type))]
out = [a, b, c, d, e, f, g, h, i is not None and i[0], j, k]
""",
}
