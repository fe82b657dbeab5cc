"""Train LeNet-5 with the text's loop and with the fast path, side by side, and compare speeds.

    python benchmarks/train_speed.py --device cpu
    python benchmarks/train_speed.py --device cuda --variants text fast fast-graph --json benchmarks/results/h100.json

Every variant trains the same recipe (LeNet-5, Xavier init, SGD lr 0.9, batch 256, cross-entropy,
reshuffled every epoch) on the real Fashion-MNIST in this one process, one after the other,
so the ratios compare runs made under the same conditions. For each it prints examples/sec
(timed around the training steps only, as the text times them), the wall time of the training
epochs and of the whole run, and the test accuracy.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lenet_book.fast import init_xavier, lenet, load_fashion_mnist_tensors, synchronize, train_fast  # noqa: E402
from lenet_book.textbook import text_loaders, train_text_loop  # noqa: E402

# name -> (description, keyword arguments of train_fast; None for the text's loop)
VARIANTS = {
    "text": ("the text's loop: DataLoader + ToTensor per image", None),
    "fast": ("fast path: data set on the device, index slicing", {}),
    "fast-1thread": ("fast path, one CPU thread", {"threads": 1}),
    "fast-flush-denormal": ("fast path, denormals flushed to zero", {"flush_denormal": True}),
    "fast-channels-last": ("fast path, channels-last memory format", {"channels_last": True}),
    "fast-bf16": ("fast path, bf16 autocast", {"amp_dtype": torch.bfloat16}),
    "fast-compile": ("fast path, torch.compile", {"compile": True}),
    "fast-graph": ("fast path, each epoch one CUDA graph", {"cuda_graph": True}),
    "fast-graph-bf16": ("fast path, CUDA graph + bf16 autocast", {"cuda_graph": True, "amp_dtype": torch.bfloat16}),
    "fast-graph-cudnn-benchmark": ("fast path, CUDA graph + cuDNN autotuning",
                                   {"cuda_graph": True, "cudnn_benchmark": True}),
    "fast-graph-compile": ("fast path, CUDA graph + torch.compile", {"cuda_graph": True, "compile": True}),
}
DEFAULTS = {"cpu": ["text", "fast"], "cuda": ["text", "fast", "fast-graph"]}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "CPU") \
        if Path("/proc/cpuinfo").exists() else (platform.processor() or "CPU")
    return f"{model}, {torch.get_num_threads()} threads"


def run_variant(name, device, epochs, root, seed):
    description, options = VARIANTS[name]
    torch.manual_seed(seed)
    net = init_xavier(lenet())
    progress = lambda h: print(f"  {name:>20} epoch {h['epoch']:2d}: loss {h['loss']:.3f}, "  # noqa: E731
                               f"train acc {h['train_acc']:.3f}, test acc {h['test_acc']:.3f}", flush=True)
    start = time.perf_counter()
    if options is None:
        train_iter, test_iter = text_loaders(root)
        history, step_seconds = train_text_loop(net, train_iter, test_iter, epochs, 0.9, device, progress)
        examples = len(train_iter.dataset) * epochs
    else:
        options = dict(options)
        threads, flush = options.pop("threads", None), options.pop("flush_denormal", False)
        saved_threads = torch.get_num_threads()
        if threads:
            torch.set_num_threads(threads)
        torch.set_flush_denormal(flush)
        torch.backends.cudnn.benchmark = options.pop("cudnn_benchmark", False)
        try:
            train_data, test_data = load_fashion_mnist_tensors(root, device)
            history, step_seconds = train_fast(net, train_data, test_data, epochs, seed=seed,
                                               on_epoch=progress, **options)
        finally:
            torch.set_num_threads(saved_threads)
            torch.set_flush_denormal(False)
            torch.backends.cudnn.benchmark = False
        examples = len(train_data[1]) * epochs
    synchronize(device)
    last = history[-1]
    return {"variant": name, "description": description, "epochs": epochs,
            "examples_per_sec": examples / step_seconds, "train_seconds": step_seconds,
            "wall_seconds": time.perf_counter() - start, "loss": last["loss"],
            "train_acc": last["train_acc"], "test_acc": last["test_acc"]}


def best_runs(results):
    """The fastest successful run of each variant, with its speed relative to the text's loop."""
    best = {}
    for r in results:
        if "error" not in r and r["examples_per_sec"] > best.get(r["variant"], {}).get("examples_per_sec", 0):
            best[r["variant"]] = r
    if "text" in best:
        for r in best.values():
            r["ratio_to_text"] = r["examples_per_sec"] / best["text"]["examples_per_sec"]
    return best


def write_json(path, name, device, args, variants, results):
    best = best_runs(results)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "device": name, "device_type": device.type, "torch": torch.__version__,
        "python": platform.python_version(), "date": datetime.date.today().isoformat(),
        "epochs": args.epochs, "repeats": args.repeats, "batch_size": 256, "lr": 0.9,
        "best": [best[v] for v in variants if v in best], "runs": results}, indent=2) + "\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1, help="run every variant this many times")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), help="default: text fast (+ fast-graph on CUDA)")
    parser.add_argument("--data", default=str(ROOT / "data"), help="data root (default: <repo>/data)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)

    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: PyTorch sees no CUDA GPU here (torch.cuda.is_available() is False); "
                     "use --device cpu")
    variants = args.variants or DEFAULTS.get(device.type, ["text", "fast"])
    if device.type != "cuda" and any("graph" in v for v in variants):
        parser.error("the fast-graph variants need a CUDA device")

    name = device_name(device)
    print(f"LeNet-5 on Fashion-MNIST, {args.epochs} epochs, batch 256, on {name} "
          f"(torch {torch.__version__})", flush=True)
    results = []
    for repeat in range(args.repeats):
        for variant in variants:
            print(f"{variant} (run {repeat + 1} of {args.repeats}): {VARIANTS[variant][0]}", flush=True)
            try:
                results.append(run_variant(variant, device, args.epochs, args.data, args.seed))
            except Exception as error:  # one broken variant must not lose the others' figures
                print(f"  {variant} failed: {type(error).__name__}: {error}", flush=True)
                results.append({"variant": variant, "description": VARIANTS[variant][0],
                                "error": f"{type(error).__name__}: {error}"})
            if args.json:
                write_json(args.json, name, device, args, variants, results)

    best = best_runs(results)
    print(f"\n{'variant':>20} {'examples/sec':>13} {'train s':>8} {'wall s':>7} {'test acc':>8} {'× text':>7}")
    for variant in variants:
        r = best.get(variant)
        if r is None:
            print(f"{variant:>20} failed")
            continue
        print(f"{variant:>20} {r['examples_per_sec']:13,.0f} {r['train_seconds']:8.2f} "
              f"{r['wall_seconds']:7.1f} {r['test_acc']:8.3f} {r.get('ratio_to_text', float('nan')):7.2f}")
    if args.json:
        print(f"results written to {args.json}")
    return 0 if all(v in best for v in variants) else 1


if __name__ == "__main__":
    sys.exit(main())
