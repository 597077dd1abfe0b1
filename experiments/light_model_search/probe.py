"""The light-model search's probe: one architecture and recipe on FERPlus, standalone
(its own small model table and loop, ferjax's data readers and on-device augmentation), so
that candidates are compared before one becomes ferjax's `light` model.

    python experiments/light_model_search/probe.py --data ../shared/data/ferplus --arch v1 --epochs 30 --out v1_30.json

Recipe: AdamW (lr 2e-3, wd 5e-4), one-cycle (10% warm-up, cosine), vote-distribution
("crossentropy") targets, batch 64, 2 CPU devices; valid = FER2013Valid majority-vote images,
"tta" = mean softmax of the face and its mirror. Seed 0, data order seed 0.
"""
import time, json, argparse
p = argparse.ArgumentParser()
p.add_argument("--arch", default="v2"); p.add_argument("--epochs", type=int, default=10)
p.add_argument("--lr", type=float, default=2e-3); p.add_argument("--wd", type=float, default=5e-4)
p.add_argument("--bs", type=int, default=64); p.add_argument("--mode", default="crossentropy")
p.add_argument("--ls", type=float, default=0.0); p.add_argument("--opt", default="adamw")
p.add_argument("--features", default="O"); p.add_argument("--ndev", type=int, default=2)
p.add_argument("--ema", type=float, default=0.0); p.add_argument("--warm", type=float, default=0.1)
p.add_argument("--drop-flat", type=float, default=0.25); p.add_argument("--drop-fc", type=float, default=0.5)
p.add_argument("--out", default=None); p.add_argument("--data", default="../shared/data/ferplus")
a = p.parse_args()
import ferjax.models.conv  # noqa: F401  (before JAX starts: ferjax's XLA:CPU convolution flags)
import jax
jax.config.update("jax_num_cpu_devices", a.ndev)
import jax.numpy as jnp, flax.linen as nn, optax, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from ferjax.data.ferplus import load_dataset
from ferjax.data.votes import label_split
from ferjax.data import augment
from ferjax import features as F

ds = load_dataset(a.data)
tr = label_split(ds.splits["train"], a.mode); va = label_split(ds.splits["valid"], "majority")
print("train", len(tr), "valid", len(va), flush=True)

def s2d(x):
    b, h, w, c = x.shape
    return x.reshape(b, h//2, 2, w//2, 2, c).transpose(0,1,3,2,4,5).reshape(b, h//2, w//2, 4*c)
def pool(x):
    b, h, w, c = x.shape
    return x.reshape(b, h//2, 2, w//2, 2, c).max(axis=(2,4))

ARCH = {
 # (stage list: tuple of conv widths per stage, each stage ends with pool), fc
 "v1": dict(stages=((24,), (48,), (96,)), top=(128,), fc=96),             # current net + BN
 "v2": dict(stages=((32,), (64, 64), (128, 128)), top=(), fc=32),         # 59 MFLOP
 "v3": dict(stages=((32,), (64,), (128,)), top=(160,), fc=64),
 "v4": dict(stages=((24,), (48, 48), (96, 96)), top=(192,), fc=48),
 "v5": dict(stages=((32,), (64,), (128,)), top=(128,), fc=64),         # v1 wider early, 26 MFLOP
 "v6": dict(stages=((32,), (64, 64), (128,)), top=(128,), fc=48),      # v5 + a 2nd conv at 16x16
 # 2026-12-07: global average pooling instead of the flattened 4x4 map, the parameters it
 # frees spent on convolutions
 "v12": dict(stages=((24,), (48, 48), (96, 96)), top=(192,), fc=128, gap=True),  # 2.4x v1's MACs
 "v13": dict(stages=((32, 32), (64, 64), (144, 144)), top=(), fc=96, gap=True),  # 5.3x v1's MACs
}
class Net(nn.Module):
    stages: tuple; top: tuple; fc: int; gap: bool = False; drop_flat: float = 0.25; drop_fc: float = 0.5
    @nn.compact
    def __call__(self, x, train=True):
        x = s2d(x)
        def cbr(x, f):
            x = nn.Conv(f, (3,3), padding="SAME", use_bias=False)(x)
            x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
            return nn.relu(x)
        for st in self.stages:
            for f in st: x = cbr(x, f)
            x = pool(x)
        for f in self.top: x = cbr(x, f)
        x = x.mean(axis=(1, 2)) if self.gap else x.reshape(x.shape[0], -1)
        x = nn.Dropout(self.drop_flat, deterministic=not train)(x)
        f = nn.relu(nn.Dense(self.fc)(x))
        x = nn.Dropout(self.drop_fc, deterministic=not train)(f)
        return nn.Dense(8)(x), f

C = F.num_channels(a.features)
model = Net(**ARCH[a.arch], drop_flat=a.drop_flat, drop_fc=a.drop_fc)
v = model.init({"params": jax.random.key(0)}, jnp.zeros((1,64,64,C)), train=False)
params, bstats = v["params"], v["batch_stats"]
print("params", sum(x.size for x in jax.tree.leaves(params)), flush=True)
spe = len(tr) // a.bs; total = spe * a.epochs
sched = optax.warmup_cosine_decay_schedule(0.0, a.lr, int(a.warm*total), total, a.lr*0.01)
if a.opt == "adamw": tx = optax.adamw(sched, weight_decay=a.wd)
else: tx = optax.chain(optax.add_decayed_weights(a.wd), optax.sgd(sched, momentum=0.9, nesterov=True))
opt = tx.init(params)
ema = jax.tree.map(jnp.array, params)

mesh = Mesh(np.array(jax.devices()), ("data",))
rep, dat = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
imgs = jax.device_put(jnp.asarray(tr.images), rep); tg = jax.device_put(jnp.asarray(tr.targets, jnp.float32), rep)
vimgs = jnp.asarray(va.images); vlab = va.labels

def step(params, bstats, opt, ema, idx, key):
    k1, k2 = jax.random.split(key)
    x = augment.augment(k1, imgs[idx], a.features, 64)
    t = tg[idx]
    if a.ls: t = t * (1 - a.ls) + a.ls / 8
    def lf(p):
        (logits, f), upd = model.apply({"params": p, "batch_stats": bstats}, x, train=True, rngs={"dropout": k2}, mutable=["batch_stats"])
        return optax.softmax_cross_entropy(logits, t).mean(), (upd["batch_stats"], logits)
    (l, (bs2, logits)), g = jax.value_and_grad(lf, has_aux=True)(params)
    u, opt = tx.update(g, opt, params)
    params = optax.apply_updates(params, u)
    if a.ema: ema = jax.tree.map(lambda e, p: a.ema*e + (1-a.ema)*p, ema, params)
    return params, bs2, opt, ema, l
stepj = jax.jit(step, in_shardings=(rep,rep,rep,rep,dat,rep), out_shardings=(rep,rep,rep,rep,rep), donate_argnums=(0,1,2,3))

@jax.jit
def evalb(params, bstats, x):
    x = augment.evaluation_inputs(x, a.features, 64)
    l1 = model.apply({"params": params, "batch_stats": bstats}, x, train=False)[0]
    l2 = model.apply({"params": params, "batch_stats": bstats}, x[:, :, ::-1], train=False)[0]
    return jax.nn.softmax(l1), jax.nn.softmax(l2)
def evaluate(params, bstats):
    p1, p2 = [], []
    for i in range(0, len(vimgs), 512):
        x = vimgs[i:i+512]
        n = x.shape[0]
        if n < 512: x = jnp.concatenate([x, jnp.zeros((512-n,48,48),x.dtype)])
        a1, a2 = evalb(params, bstats, x); p1.append(np.asarray(a1)[:n]); p2.append(np.asarray(a2)[:n])
    p1, p2 = np.concatenate(p1), np.concatenate(p2)
    return 100*(p1.argmax(1)==vlab).mean(), 100*((p1+p2).argmax(1)==vlab).mean()

t0 = time.time(); key = jax.random.key(1)
log = []
for ep in range(a.epochs):
    te = time.time()
    order = np.random.default_rng((0, ep)).permutation(len(tr))[:spe*a.bs].reshape(spe, a.bs)
    for s in range(spe):
        params, bstats, opt, ema, l = stepj(params, bstats, opt, ema, order[s], jax.random.fold_in(key, ep*spe+s))
    l.block_until_ready(); tt = time.time()-te
    acc, acct = evaluate(ema if a.ema else params, bstats)
    log.append(dict(epoch=ep+1, acc=acc, acc_tta=acct, train_s=tt, wall=time.time()-t0, loss=float(l)))
    print(f"ep {ep+1} loss {float(l):.3f} valid {acc:.2f} tta {acct:.2f} train {tt:.1f}s ({spe*a.bs/tt:.0f} img/s) wall {time.time()-t0:.0f}s", flush=True)
if a.out: json.dump(dict(args=vars(a), log=log), open(a.out, "w"))
