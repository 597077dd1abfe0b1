"""The markdown report (results.md) of a results dict, as results.json holds it."""
from __future__ import annotations


def _f(x, fmt="{:.1f}", none="–"):
    return none if x is None else fmt.format(x)


def markdown(r: dict) -> str:
    sections = (_header, _targets, _rates, _sweeps, _loop, _pipeline, _profiles, _conv_layers, _flops, _notes)
    return "\n".join(line for section in sections for line in section(r)) + "\n"


def target_lines(r: dict) -> list[str]:
    """The targets, one plain-text line each (the suite's last words on the console)."""
    return [f"  {t['workload']:22s} vs {t['against']:28s} {_f(t['ratio'], '{:.2f}x'):>7s}  "
            f"target {_f(t['min'], '{:.1f}x', '-'):>6s}  {_met(t['met'])}" for t in r["targets"]]


def _header(r: dict) -> list[str]:
    """The run: when, the machine, versions, missing peers, the matmul ceiling."""
    m, L = r["machine"], []
    L.append(f"# ferjax benchmarks ({r['mode']})\n")
    L.append(f"{r['started'][:19]}Z, {r['duration_s'] / 60:.1f} min. CPU: {m['cpu']}, "
             f"{m['cores']['usable']} usable cores; load average at start "
             f"{m['load_average_start']}, at end {m['load_average_end']}.")
    busy = m.get("cpu_busy_before_start")
    if busy is not None and busy > 0.1:
        L.append(f"\n**Warning: the machine was busy when the suite started ({busy:.0%} of its CPU "
                 f"time in use by other processes): the rates below are lower than on an idle "
                 f"machine and the ratios are noisy.**")
    elif busy is not None:
        L.append(f"\nCPU in use by other processes just before the start: {busy:.0%}.")
    if r["mode"] == "smoke":
        L.append("\n**Smoke run (one step, batches capped at 8): checks that every path runs; "
                 "the numbers mean nothing.**")
    v = r["versions"]
    vers = [f"jax {v['ferjax']['jax']}", f"flax {v['ferjax']['flax']}"]
    for p in ("torch", "keras"):
        vers.append(f"{p} {v[p].get(p)}" if v[p]["available"] else f"{p}: MISSING ({v[p]['error']})")
    if v["keras"]["available"]:
        vers.append(f"tensorflow {v['keras'].get('tensorflow')}")
    L.append("\nVersions: " + ", ".join(vers) + ".")
    tunables = v["ferjax"].get("glibc_tunables")
    if tunables is not None:
        L.append(f"\nEvery worker's GLIBC_TUNABLES: `{tunables or '(none)'}`.")
    for p, info in r["peers"].items():
        if not info["available"]:
            L.append(f"\n**Peer {p} is missing** ({info['error']}): its columns are empty and the "
                     f"ratios are taken against the peers that ran.")
    c = r["ceiling"]
    runs = ", ".join("n={} {}: {}".format(x["n"], x["when"], _f(x["gflops"])) for x in c["runs"])
    L.append(f"\nMatmul ceiling (float32 through jax): **{_f(c['gflops'])} GFLOP/s** ({runs}); "
             f"PyTorch torch.mm: {_f(c['torch_gflops'])} GFLOP/s.")
    return L


def _targets(r: dict) -> list[str]:
    """Every target, its ratio and whether it is met."""
    L = []
    L.append("\n## Targets\n")
    L.append("| workload | ratio of ferjax to | target | measured | met |")
    L.append("|---|---|---|---|---|")
    for t in r["targets"]:
        L.append(f"| {t['workload']} | {t['against']} | {_f(t['min'], '>= {:.1f}x', '')} | "
                 f"{_f(t['ratio'], '{:.2f}x')}{_range(t.get('spread'), '{:.2f}')} | {_met(t['met'])} |")
    return L


def _rates(r: dict) -> list[str]:
    """Ferjax against its peers, the kept variants and every variant."""
    L = []
    L.append("\n## Training and inference (images/s)\n")
    L.append("ferjax = its default (`" + r["versions"]["ferjax"].get("default_variant", r["versions"]["ferjax"]["default_conv"]) + "`, what `ferjax train` runs); peers: "
             "their faster variant (in brackets). GFLOP/s from the stated FLOP count. "
             + _rounds_line(r) + "\n")
    L.append("| workload | ferjax | PyTorch | Keras | ratio vs best peer | vs PyTorch | "
             "ferjax GFLOP/s (% ceiling) | PyTorch GFLOP/s | peak RSS ferjax / torch / keras (MB, the variants shown) |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    default = r["versions"]["ferjax"].get("default_variant", r["versions"]["ferjax"]["default_conv"])
    for e in r["comparisons"]:
        if e["task"] == "sweep":
            continue
        ips, best = e["images_per_s"], e["best_variant"]
        g, frac = e.get("achieved_gflops", {}), e.get("fraction_of_ceiling", {})
        rss = e["peak_rss_mb"]
        spread = e.get("images_per_s_spread") or {}

        def peer(p):
            if p in e["missing_peers"]:
                return "missing"
            return f"{_f(ips.get(p))}{_range(spread.get(p))} ({best.get(p, '–')})"

        def rss_of(fw):      # of the variant whose rate the row shows
            variant = default if fw == "ferjax" else best.get(fw)
            return _f(rss.get(fw, {}).get(variant), "{:.0f}")
        L.append(f"| {e['workload']} | {_f(ips.get('ferjax'))}{_range(spread.get('ferjax'))} | "
                 f"{peer('torch')} | {peer('keras')} | {_f(e['ratio_vs_best_peer'], '{:.2f}x')}"
                 f"{_range(e.get('ratio_vs_best_peer_spread'), '{:.2f}')} | {_f(e['ratio_vs_torch'], '{:.2f}x')}"
                 f"{_range(e.get('ratio_vs_torch_spread'), '{:.2f}')} | "
                 f"{_f(g.get('ferjax'))} ({_f(frac.get('ferjax'), '{:.0%}')}) | {_f(g.get('torch'))} | "
                 f"{rss_of('ferjax')} / {rss_of('torch')} / {rss_of('keras')} |")

    L.append("\n### Every variant (images/s)\n")
    L.append("| workload | " + " | ".join(_variant_columns(r)) + " |")
    L.append("|---|" + "---|" * len(_variant_columns(r)))
    for e in r["comparisons"]:
        if e["task"] == "sweep":
            continue
        cells = [_f(e["variant_images_per_s"].get(fw, {}).get(v)) for fw, v in
                 (col.split("/", 1) for col in _variant_columns(r))]
        L.append(f"| {e['workload']} | " + " | ".join(cells) + " |")
    errs = {e["workload"]: e["errors"] for e in r["comparisons"] if e.get("errors")}
    if errs:
        L.append("\nFailed variants: " + "; ".join(f"{w}: {k} ({' '.join(v)[:200]})"
                                                   for w, d in errs.items() for k, v in d.items()))
    return L


def _sweeps(r: dict) -> list[str]:
    """Each sweep: vmapped against sequential, per K."""
    L = []
    for e in r["comparisons"]:
        if e["task"] != "sweep":
            continue
        L.append(f"\n## Sweep: {e['workload']} ({e['model']}, batch {e['batch']}, {e['conv']} conv)\n")
        L.append("Images/s per configuration (what each of the K configurations gets over the whole "
                 "sweep): K configurations stepped as a group (on a CPU, each run its own program; batch / "
                 "time of one step of every run) vs the same K trained "
                 "one after another (steps x batch / total time of the K runs). The ratio is the "
                 "speed-up of the whole sweep.\n")
        convs = list(e["per_k"][0].get("vmapped_per_config_by_conv", {})) or [e["conv"]]
        L.append("| K | " + " | ".join(f"vmapped {c}" for c in convs) + " | "
                 + " | ".join(f"sequential {c}" for c in convs)
                 + f" | ratio ({e['conv']} vmapped / faster sequential) | ratio (faster vmapped / "
                 "faster sequential) | peak RSS vmapped / sequential (MB) |")
        L.append("|---|" + "---|" * (2 * len(convs) + 3))
        for row in e["per_k"]:
            vm = row.get("vmapped_per_config_by_conv", {})
            sq = row.get("sequential_per_config_by_conv", {})
            L.append(f"| {row['k']} | " + " | ".join(_f(vm.get(c)) for c in convs) + " | "
                     + " | ".join(_f(sq.get(c)) for c in convs) + " | "
                     f"{_f(row['ratio'], '{:.2f}x')}{_range(row.get('ratio_spread'), '{:.2f}')} "
                     f"({row.get('rounds', 1)} round(s)) | {_f(row.get('ratio_best_vmapped'), '{:.2f}x')} "
                     f"({row.get('best_vmapped_conv', '–')}) | "
                     f"{_f(row['peak_rss_mb']['vmapped'], '{:.0f}')} / "
                     f"{_f(row['peak_rss_mb']['sequential'], '{:.0f}')} |")
    return L


def _loop(r: dict) -> list[str]:
    """The production training loop against its own step."""
    lp = r.get("loop")
    if not lp:
        return []
    if lp["status"] != "ok":
        return ["\n## Training loop\n", f"Not measured: the job ended with status {lp['status']}."]
    own, bare = lp["loop_over_own_step"], lp["loop_over_step"]
    data = lp.get("data") or "synthetic"
    where = "the built-in faces in the full data's proportions" if data == "synthetic" else data
    return ["\n## Training loop\n",
            f"`ferjax.train.loop.train` ({lp['model']}, batch {lp['batch']}, {lp['variant']}, the "
            f"{lp.get('profile')} profile{', flip-averaged evaluation' if lp.get('eval_flip') else ''}) "
            f"on {where} ({lp['train_images']} training images, "
            f"{lp.get('valid_images', '?')} valid, no test; {lp['steps_per_epoch']} steps per "
            f"epoch, {lp['epochs']} epochs; every epoch's evaluation, checkpoints and metrics "
            f"included): **{_f(lp['images_per_s'], '{:.0f}')} images/s**, against "
            f"{_f(lp['own_step_images_per_s'], '{:.0f}')} for its own step (the jitted step it "
            f"calls: gather the batch from the resident split, augment it, train) on a fixed batch. "
            f"An epoch after the first took {_f(own['median'], '{:.3f}')}x (median; at most "
            f"{_f(own['max'], '{:.3f}')}x) its own steps' time; goal at most 1.15x: "
            f"{_met(lp['target_met'])}. Of that, the epoch's training took "
            f"{_f(lp['training_over_own_step'], '{:.3f}')}x its own steps, and the whole epoch "
            f"(evaluation, checkpoints, metrics) {_f(lp['epoch_over_training'], '{:.3f}')}x its "
            f"training (medians). Against the bare step on an already preprocessed batch (the "
            f"peers' workload, {_f(lp['step_images_per_s'], '{:.0f}')} images/s), an epoch took "
            f"{_f(bare['median'], '{:.3f}')}x (at most {_f(bare['max'], '{:.3f}')}x), its training "
            f"{_f(lp['training_over_step'], '{:.3f}')}x."]


def _pipeline(r: dict) -> list[str]:
    """The input pipeline against its fastest consumer, and the fed step."""
    L = []
    p = r["pipeline"]
    L.append("\n## Input pipeline\n")
    L.append(f"tf.data training pipeline alone ({p['n_images']} random images, batch {p['batch']}): "
             + ", ".join(f"{fs} {_f(x, '{:.0f}')} images/s ({_f(p['train_images_per_cpu_s'][fs], '{:.0f}')}"
                         f" per CPU-s)" for fs, x in p["train_images_per_s"].items()) + ".")
    L.append("Fastest ferjax training step per O-S-L workload (resident batch): "
             + (", ".join(f"{w} {_f(x['images_per_s'], '{:.0f}')} ({x['conv']})"
                          for w, x in p["step_consumption_images_per_s"].items()) or "–") + " images/s.")
    fed = p["fed"]
    L.append(f"\nStep fed by the pipeline ({fed['workload']}), as the training loop runs it: "
             f"{_f(fed['images_per_s'], '{:.0f}')} images/s (same step on a resident batch: "
             f"{_f(fed['resident_images_per_s'], '{:.0f}')}). Of {_f(fed['wall_s'])} s the loop spent "
             f"{_f(fed['data_wait_s'])} s waiting for batches and {_f(fed['dispatch_s'])} s blocked "
             f"dispatching steps; {_f(fed['backlog_s'], '{:.2f}')} s of queued steps remained after the "
             f"last batch (one resident step: {_f(fed['resident_step_s'], '{:.3f}')} s). "
             f"Pipeline-bound: {_yn(fed['pipeline_bound'])}.")
    L.append(f"\n**Pipeline never the bottleneck: {_met(p['target_met'])}** (O-S-L pipeline alone "
             f"{_f(p['train_images_per_s']['O-S-L'], '{:.0f}')} images/s vs the fastest O-S-L step "
             f"{_f(p['fastest_consumer_images_per_s'], '{:.0f}')} images/s; the fed step is "
             f"{'not ' if fed['pipeline_bound'] is False else ''}pipeline-bound). On a 2-core machine "
             f"the pipeline's own CPU time slows a fed step even when the step never waits for data.")
    return L


def _profiles(r: dict) -> list[str]:
    """The per-op profiles of the missed targets."""
    L = []
    prof = [e for e in r["comparisons"] if e.get("profile")]
    if prof:
        L.append("\n## What bounds the missed targets (ferjax per-op profile)\n")
        L.append("Top ops of the compiled step by time (jax.profiler trace of XLA's compute "
                 "threads; times are summed over threads, so they can exceed the wall step; an "
                 "asynchronous op, as Eigen's convolutions are, counts from its start to its "
                 "`end:` event, while other ops run beside it).")
        for e in prof:
            profiles = e["profile"]
            if "top_ops" in profiles or "what" in profiles:
                profiles = {profiles.get("what", "step"): profiles}
            for conv, pr in profiles.items():
                L.append(f"\n**{e['workload']}** ({conv}): busy {_f(pr.get('busy_ms_per_step'))} ms/step"
                         + (f"; {pr['error'][:200]}" if pr.get("error") else ""))
                if pr.get("top_ops"):
                    L.append("\n| op | output | from (JAX op) | ms/step | share |\n|---|---|---|---|---|")
                    for o in pr["top_ops"][:12]:
                        L.append(f"| `{o['op'][:40]}` | `{o.get('shape', '')[:40]}` | "
                                 f"`{o.get('source', '')[-80:]}` | {o['ms_per_step']:.1f} | {o['share']:.0%} |")
    return L


def _conv_layers(r: dict) -> list[str]:
    """VGG13's convolutions one by one."""
    L = []
    cl = r.get("conv_layers", {}).get("by_conv") or {}
    if any(cl.values()):
        convs = [c for c, rows in cl.items() if rows]
        L.append(f"\n## VGG13's convolutions one by one (batch {r['conv_layers']['batch']}, GFLOP/s)\n")
        L.append("Forward, and forward + input gradient + weight gradient (the first layer: weight "
                 "gradient only), per ferjax conv implementation; compare with the ceiling above.\n")
        L.append("| layer | " + " | ".join(f"{c} fwd | {c} train" for c in convs) + " |")
        L.append("|---|" + "---|---|" * len(convs))
        for i, row in enumerate(cl[convs[0]]):
            cells = []
            for c in convs:
                x = cl[c][i]
                cells += [f"{x['forward_gflops']:.0f}", f"{x['train_gflops']:.0f} ({x['train_ms']:.0f} ms)"]
            L.append(f"| {row['side']}x{row['side']} {row['cin']}->{row['cout']} | " + " | ".join(cells) + " |")
    return L


def _flops(r: dict) -> list[str]:
    """The stated FLOP counts."""
    L = []
    L.append("\n## Stated FLOP counts (per image)\n")
    L.append("| model / features | forward GFLOP | training GFLOP (3x) |\n|---|---|---|")
    for k, f in r["flops"].items():
        if f:
            L.append(f"| {k} | {f['forward_flops_per_image'] / 1e9:.3f} | {f['train_flops_per_image'] / 1e9:.3f} |")
    return L


def _notes(r: dict) -> list[str]:
    return ["\n## Notes\n"] + [f"* {n}" for n in r["notes"]]


def _range(pair, fmt="{:.0f}") -> str:
    """' [lo-hi]' for a spread of several rounds, '' for one."""
    if not pair or pair[0] == pair[1]:
        return ""
    return f" [{fmt.format(pair[0])}-{fmt.format(pair[1])}]"


def _rounds_line(r: dict) -> str:
    n = (r.get("settings") or {}).get("rounds", 1)
    return (f"Each rate is the median of {n} rounds, [min-max] beside it; each ratio the median "
            "of the per-round ratios." if n > 1 else "One round: no spread.")


def _met(x):
    return {True: "yes", False: "**NO**", None: "not measured"}[x]


def _yn(x):
    return {True: "yes", False: "no", None: "unknown"}[x]


def _variant_columns(r: dict) -> list[str]:
    cols = []
    for e in r["comparisons"]:
        for fw, rows in e.get("variant_images_per_s", {}).items():
            for v in rows:
                if f"{fw}/{v}" not in cols:
                    cols.append(f"{fw}/{v}")
    return cols
