#!/usr/bin/env python3
"""The Python half of scripts/bench-vs-sentence-transformers.sh.

Run inside one of the script's venvs (target/st-onnx-venv or
target/st-openvino-venv); every subcommand is offline and writes under OUT
(target/bench-vs-st):

  prepare-onnx  SRC DEST           ST backend="onnx" export of SRC into DEST, plus
                                   export_dynamic_quantized_onnx_model with the
                                   config that matches this CPU (avx512_vnni, ...)
  prepare-openvino SRC DEST CALIB  ST backend="openvino" export of SRC into DEST,
                                   plus export_static_quantized_openvino_model
                                   calibrated on the texts of CALIB (a JSONL of
                                   {"id","text"}, disjoint from the timed texts)
  time ENGINE OUT THREADS          times one engine on OUT/texts.jsonl at batch
                                   32, 16 and 64 (each twice, alternating, the
                                   faster kept), writes OUT/engine-ENGINE.json and
                                   OUT/vectors-ENGINE.npy (normalised, text order)
  report OUT THREADS N CALIB       prints the Markdown table (and writes
                                   OUT/table.md, OUT/results.json)

Each engine runs in its own process, so no engine's thread pool (OpenMP
spin-waits included) is alive while another is timed.
"""
import hashlib
import re
import json
import os
import platform
import shutil
import sys
import time
from pathlib import Path

BATCHES = (32, 16, 64, 64, 16, 32)  # alternating: the first encode of a shape pays warm-up

# What each engine is, in the order of the table. "venv" says which of the
# two venvs runs it; "kind" which loader.
ENGINES = {
    "st-f32": "ST torch f32",
    "st-bf16": "ST torch bf16 (`model.to(torch.bfloat16)`)",
    "onnx-f32": "ST `backend=\"onnx\"` f32 (ONNX Runtime)",
    "onnx-int8": "ST `backend=\"onnx\"` int8 (`export_dynamic_quantized_onnx_model`, {qconfig})",
    "ov-default": "ST `backend=\"openvino\"`, its default precision ({precision} here)",
    "ov-f32": "ST `backend=\"openvino\"` f32 (`INFERENCE_PRECISION_HINT=f32`)",
    "ov-int8": "ST `backend=\"openvino\"` static int8 (`export_static_quantized_openvino_model`)",
}
ONNX_ENGINES = ("st-f32", "st-bf16", "onnx-f32", "onnx-int8")
OPENVINO_ENGINES = ("ov-default", "ov-f32", "ov-int8")


def die(msg):
    print(f"bench-st-engines: error: {msg}", file=sys.stderr)
    sys.exit(1)


def cpu_flags():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith(("flags", "Features")):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def onnx_qconfig():
    """The sentence-transformers dynamic-quantisation preset for this CPU."""
    flags = cpu_flags()
    if platform.machine() in ("aarch64", "arm64"):
        return "arm64"
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    if {"avx512f", "avx512bw"} <= flags:
        return "avx512"
    return "avx2"


def file_sha(path, limit=None):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read() if limit is None else f.read(limit))
    return h.hexdigest()


def versions():
    """Installed versions of the packages that matter here (absent ones left out)."""
    import importlib.metadata as md
    out = {}
    for dist in ("sentence-transformers", "transformers", "torch", "onnxruntime", "optimum", "optimum-onnx",
                 "optimum-intel", "openvino", "nncf"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


def stamp_ok(dest, key):
    stamp = Path(dest) / "bench-stamp.json"
    return stamp.exists() and json.loads(stamp.read_text()) == key


def finish(tmp, dest, key):
    """Moves a fully written export into place: a half-done export never lands at DEST."""
    (Path(tmp) / "bench-stamp.json").write_text(json.dumps(key))
    if Path(dest).exists():
        shutil.rmtree(dest)
    os.rename(tmp, dest)


def fresh_tmp(dest):
    tmp = Path(str(dest) + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    return tmp


def prepare_onnx(src, dest):
    from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model
    qconfig = onnx_qconfig()
    key = {"model": file_sha(Path(src) / "model.safetensors"), "qconfig": qconfig, "versions": versions()}
    if stamp_ok(dest, key):
        print(f"bench: ONNX exports in {dest} are current")
        return
    tmp = fresh_tmp(dest)
    print(f"bench: exporting ONNX (f32, then int8 with the {qconfig} preset) into {dest}")
    model = SentenceTransformer(src, device="cpu", backend="onnx", model_kwargs={"provider": "CPUExecutionProvider"})
    model.save(str(tmp))
    export_dynamic_quantized_onnx_model(model, qconfig, str(tmp))
    for f in ("onnx/model.onnx", f"onnx/model_qint8_{qconfig}.onnx"):
        if not (tmp / f).exists():
            die(f"the ONNX export did not write {tmp / f}")
    finish(tmp, dest, key)


def prepare_openvino(src, dest, calib):
    from sentence_transformers import SentenceTransformer, export_static_quantized_openvino_model
    from optimum.intel import OVQuantizationConfig
    texts = [json.loads(l)["text"] for l in open(calib)]
    if not texts:
        die(f"no calibration texts in {calib}")
    key = {"model": file_sha(Path(src) / "model.safetensors"), "calib": file_sha(calib), "versions": versions()}
    if stamp_ok(dest, key):
        print(f"bench: OpenVINO exports in {dest} are current")
        return
    tmp = fresh_tmp(dest)
    # export_static_quantized_openvino_model loads its calibration set with
    # datasets.load_dataset(dataset_name, split=...): a local folder holding a
    # train.jsonl is such a data set, and needs no hub.
    data = Path(str(dest) + ".calib")
    if data.exists():
        shutil.rmtree(data)
    data.mkdir(parents=True)
    with open(data / "train.jsonl", "w") as f:
        for t in texts:
            f.write(json.dumps({"text": t}) + "\n")
    print(f"bench: exporting OpenVINO IR, then static int8 calibrated on {len(texts)} texts, into {dest}")
    model = SentenceTransformer(src, device="cpu", backend="openvino")
    model.save(str(tmp))
    export_static_quantized_openvino_model(
        model,
        OVQuantizationConfig(num_samples=len(texts)),
        str(tmp),
        dataset_name=str(data),
        dataset_config_name="default",
        dataset_split="train",
        column_name="text",
    )
    for f in ("openvino/openvino_model.xml", "openvino/openvino_model_qint8_quantized.xml"):
        if not (tmp / f).exists():
            die(f"the OpenVINO export did not write {tmp / f}")
    finish(tmp, dest, key)


def ov_property(model, name):
    """A property of the compiled OpenVINO model behind a sentence-transformers
    model, as text: element types shortened (bfloat16 -> bf16)."""
    req = getattr(model[0].auto_model, "request", None)
    for obj in (req, getattr(req, "get_compiled_model", lambda: None)() if req is not None else None):
        if obj is not None and hasattr(obj, "get_property"):
            try:
                v = obj.get_property(name)
                v = getattr(v, "get_type_name", lambda: str(v))()
                return {"bfloat16": "bf16", "float32": "f32", "float16": "f16"}.get(v, v)
            except Exception:
                pass
    return "?"


def load(engine, out, model_dir, threads):
    import torch
    torch.set_num_threads(threads)
    from sentence_transformers import SentenceTransformer
    info = {}
    if engine in ("st-f32", "st-bf16"):
        model = SentenceTransformer(model_dir, device="cpu")
        if engine == "st-bf16":
            model = model.to(torch.bfloat16)
    elif engine in ("onnx-f32", "onnx-int8"):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        qconfig = onnx_qconfig()
        name = "onnx/model.onnx" if engine == "onnx-f32" else f"onnx/model_qint8_{qconfig}.onnx"
        model = SentenceTransformer(
            f"{out}/onnx-model", device="cpu", backend="onnx",
            model_kwargs={"file_name": name, "provider": "CPUExecutionProvider", "session_options": so},
        )
        info["qconfig"] = qconfig
    elif engine in OPENVINO_ENGINES:
        ov_config = {"INFERENCE_NUM_THREADS": threads}
        if engine == "ov-f32":
            ov_config["INFERENCE_PRECISION_HINT"] = "f32"
        name = "openvino/openvino_model_qint8_quantized.xml" if engine == "ov-int8" else "openvino/openvino_model.xml"
        model = SentenceTransformer(
            f"{out}/openvino-model", device="cpu", backend="openvino",
            model_kwargs={"file_name": name, "ov_config": ov_config},
        )
    else:
        die(f"unknown engine {engine!r}; known: {', '.join(ENGINES)}")
    return model, info


def time_engine(engine, out, threads, model_dir):
    import numpy as np
    import torch
    rows = [json.loads(l) for l in open(f"{out}/texts.jsonl")]
    texts = [r["text"] for r in rows]
    model, info = load(engine, out, model_dir, threads)
    model.encode(texts[:32], batch_size=32)
    if engine in OPENVINO_ENGINES:
        # Compiled on first use: ask only now what it runs at.
        info["precision"] = ov_property(model, "INFERENCE_PRECISION_HINT")
        info["ov_threads"] = ov_property(model, "INFERENCE_NUM_THREADS")
    timings, vecs = {}, None
    for batch in BATCHES:
        start = time.perf_counter()
        v = model.encode(texts, batch_size=batch, normalize_embeddings=True, convert_to_numpy=True)
        timings[batch] = min(timings.get(batch, float("inf")), time.perf_counter() - start)
        if vecs is None:
            vecs = np.asarray(v, dtype=np.float32)
    np.save(f"{out}/vectors-{engine}.npy", vecs)
    by_batch = {b: len(texts) / s for b, s in timings.items()}
    best = max(by_batch, key=by_batch.get)
    res = {
        "engine": engine, "docs": len(texts), "docs_per_s_by_batch": by_batch, "best_batch": best,
        "docs_per_s": by_batch[best], "torch_threads": torch.get_num_threads(), "versions": versions(), **info,
    }
    json.dump(res, open(f"{out}/engine-{engine}.json", "w"), indent=2)
    print(f"bench: {engine}: " + ", ".join(f"batch {b} {d:.1f}" for b, d in sorted(by_batch.items())) + " docs/s")


def cpu_line():
    name, family, model = "?", "?", "?"
    try:
        for line in open("/proc/cpuinfo"):
            k, _, v = line.partition(":")
            k, v = k.strip(), v.strip()
            if k == "model name" and name == "?":
                name = v
            elif k == "cpu family" and family == "?":
                family = v
            elif k == "model" and model == "?":
                model = v
    except OSError:
        pass
    flags = cpu_flags()
    keep = sorted(f for f in flags if f.startswith("amx") or f in ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni"))
    amx = "" if any(f.startswith("amx") for f in flags) else ", no AMX exposed"
    return f"{name} (family {family}, model {model}), {os.cpu_count()} cores; flags: {' '.join(keep)}{amx}"


def report(out, threads, n, calib):
    import numpy as np
    out = Path(out)
    ids = [json.loads(l)["id"] for l in open(out / "texts.jsonl")]
    if not (out / "engine-st-f32.json").exists():
        die("no sentence-transformers f32 result to compare with (engine-st-f32.json)")
    base = json.load(open(out / "engine-st-f32.json"))
    ref = np.load(out / "vectors-st-f32.npy")
    ref = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    best = base["docs_per_s"]

    def cosines(v):
        v = np.asarray(v, dtype=np.float64)
        v = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-30)
        c = np.sum(v * ref, axis=1)
        return float(c.min()), float(c.mean())

    # What the shell script recorded per engine: "ok", or why there is no figure.
    status = {}
    if (out / "status.tsv").exists():
        for line in open(out / "status.tsv"):
            k, _, v = line.rstrip("\n").partition("\t")
            status[k] = v
    rows, results, seen = [], [], {}
    for engine, label in ENGINES.items():
        f = out / f"engine-{engine}.json"
        if status.get(engine, "ok") != "ok" or not f.exists():
            why = status.get(engine, "not run")
            rows.append(f"| {label.format(qconfig=onnx_qconfig(), precision='?')} | | {why} | | | |")
            continue
        r = json.load(open(f))
        venv = "OpenVINO venv" if engine.startswith("ov-") else "ST/ONNX venv"
        seen.setdefault(venv, r.get("versions", {}))
        label = label.format(qconfig=r.get("qconfig", "?"), precision=r.get("precision", "?"))
        mn, mean = cosines(np.load(out / f"vectors-{engine}.npy"))
        r.update(cos_min=mn, cos_mean=mean, ratio=r["docs_per_s"] / best, label=label)
        results.append(r)
        rows.append(f"| {label} | {r['best_batch']} | {r['docs_per_s']:.1f} | {r['ratio']:.2f}x | {mn:.6f} | {mean:.6f} |")

    # papersim: the faster of two `bench embed` runs per precision.
    runs = {}
    for name in ("papersim.json", "papersim-2.json"):
        if (out / name).exists():
            for p in json.load(open(out / name)):
                if p["precision"] not in runs or p["docs_per_s"] > runs[p["precision"]]["docs_per_s"]:
                    runs[p["precision"]] = p
    for prec in ("f32", "int8", "bf16"):
        if prec not in runs:
            why = status.get(f"papersim-{prec}", "not run")
            rows.append(f"| papersim {prec} | | {why} | | | |")
            continue
        p = runs[prec]
        by_id = {}
        for l in open(out / f"papersim-{prec}-vectors.jsonl"):
            e = json.loads(l)
            by_id[e["id"]] = e["embedding"]
        mn, mean = cosines([by_id[i] for i in ids])
        # device reads e.g. "cpu (avx512-vnni, 2 threads)": name the kernel path.
        m = re.match(r"[^(]*\(([^,)]+)", p.get("device", ""))
        label = f"papersim {prec}" + (f" (`{m.group(1)}` path)" if m else "")
        bt = f"{p['batch_tokens']} tokens" if "batch_tokens" in p else ""
        rows.append(f"| {label} | {bt} | {p['docs_per_s']:.1f} | {p['docs_per_s'] / best:.2f}x | {mn:.6f} | {mean:.6f} |")
        results.append({"engine": f"papersim-{prec}", **p, "cos_min": mn, "cos_mean": mean, "ratio": p["docs_per_s"] / best})

    lines = [
        f"{len(ids)} arXiv abstracts (title + \". \" + abstract; records 0..{n - 1}), {threads} threads for every engine, "
        f"{time.strftime('%Y-%m-%d')}; OpenVINO int8 calibrated on records {n}..{n + calib - 1}",
        f"CPU: {cpu_line()}",
        "",
        f"| engine | best batch | docs/s | vs ST f32 at its best batch ({base['best_batch']}) | min cos to ST f32 | mean cos |",
        "|---|---|---|---|---|---|",
        *rows,
        "",
        "Versions: " + "; ".join(f"{venv}: " + ", ".join(f"{k} {v}" for k, v in vs.items()) for venv, vs in seen.items())
        + f"; papersim {os.environ.get('PAPERSIM_REV', '?')}",
    ]
    text = "\n".join(lines)
    print()
    print(text)
    (out / "table.md").write_text(text + "\n")
    json.dump({"cpu": cpu_line(), "threads": threads, "n": n, "results": results}, open(out / "results.json", "w"), indent=2)


def main(argv):
    if len(argv) < 2:
        die(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "qconfig":
        print(onnx_qconfig())
    elif cmd == "prepare-onnx" and len(args) == 2:
        prepare_onnx(*args)
    elif cmd == "prepare-openvino" and len(args) == 3:
        prepare_openvino(*args)
    elif cmd == "time" and len(args) == 4:
        time_engine(args[0], args[1], int(args[2]), args[3])
    elif cmd == "report" and len(args) == 4:
        report(args[0], int(args[1]), int(args[2]), int(args[3]))
    else:
        die(f"bad arguments: {argv[1:]}\n{__doc__}")


if __name__ == "__main__":
    main(sys.argv)
