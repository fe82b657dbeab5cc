"""A fused training step for LeNet-5: forward, loss, backward and SGD update compiled as
one function.

The fast path of chapter 4 (``lenet_book.fast``) runs each step as PyTorch's eager kernels, about
eighty small ones per batch of 256 (82 in chapter 4's GPU profile), and on a GPU their launches
cost more than their arithmetic. Here the whole step is one ``torch.compile``d function
(``fullgraph=True``: no Python between its parts), so the compiler can merge the element-wise
work (sigmoids, pooling, the loss, the weight update) into a few generated kernels around the
convolutions and matrix products.

The maths is ``fast.train_step``'s: cross-entropy averaged over the batch, plain SGD,
``p -= lr * grad``. The gradients come from ``torch.func.grad`` of a functional call of the
network, and the update writes into the network's own parameters in place, so ``net`` is
trained as ``fast.train_fast`` would train it.

``bf16_layers`` names layers to compute in bfloat16 (mixed precision: the weights stay float32,
the layer's inputs and weights are rounded to bfloat16 for its arithmetic, its output comes back
as float32). On a CPU with bfloat16 instructions (Intel's AMX, AVX-512 BF16) a convolution may
run faster that way; chapter 4's CPU benchmark computes LeNet's second convolution, the largest
layer, in bfloat16, and measures whether it helped.

On a GPU ``train_fused(..., cuda_graph=True)`` first runs the compiled step a few times on a
side stream (compiling it for the full batch and the short last one), then records a whole
epoch of compiled steps as one CUDA graph and replays it every epoch, as ``fast.EpochGraph`` does.
"""

from __future__ import annotations

import contextlib
import functools
import time

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad

from lenet_book.checks import (
    _a_kind,
    _brief,
    _check_fused_options,
    _compiler_default,
    _input_problem,
    _is_flag,
    _own_hook,
    at_the_door,
    check_finite_loss,
    check_fused_step,
    check_indices,
    check_no_device_given,
    check_training,
    check_whole,
)
from lenet_book.fast import evaluate, synchronize, to_float
from lenet_book.train import _as_train_leaves_it

__all__ = ["FusedStep", "FusedEpochGraph", "train_fused", "warm_up"]


class FusedStep:
    """One compiled SGD step of ``net`` on the batch ``images[idx], labels[idx]``.

    Calling it returns (summed loss, correct predictions) as tensors, like ``fast.train_step``,
    and updates ``net``'s parameters in place. ``compile=False`` runs the same function eagerly
    (for comparison); ``backend`` and ``mode`` go to ``torch.compile``. ``channels_last=True``
    hands the convolutions their batches in the channels-last memory layout (the network's
    weights must be in it too: ``train_fused`` converts them), which the CPU's kernels prefer.
    ``bf16_layers`` names children of ``net`` (an ``nn.Sequential``: their indices, so "3" is
    LeNet's second convolution) that compute in bfloat16 under autocast.
    """

    def __init__(self, net, images, labels, lr=0.9, compile=True, backend="inductor", mode=None,
                 channels_last=False, bf16_layers=()):
        check_fused_step(net, images, labels, lr, compile, channels_last)  # lenet_book.checks
        layers = dict(net.named_children())
        self.bf16_layers = {str(name) for name in bf16_layers}
        unknown = sorted(self.bf16_layers - layers.keys())
        if unknown:
            raise ValueError(f"bf16_layers {unknown} are not layers of the network; "
                             f"its layers are {list(layers)}")
        self.net, self.images, self.labels, self.lr = net, images, labels, lr
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.names = [name for name, _ in net.named_parameters()]
        # detach() shares storage: updating these updates the network's parameters
        self.params = [p.detach() for p in net.parameters()]
        step = self._step
        if compile:
            # dynamic=False: one specialised compilation for the full batch and one for the
            # short last batch, instead of a slower shape-generic one
            step = torch.compile(step, fullgraph=True, dynamic=False, backend=backend, mode=mode)
        self.step = step

    def _forward(self, params, X):
        if not self.bf16_layers:
            return functional_call(self.net, dict(zip(self.names, params)), (X,))
        params = dict(zip(self.names, params))
        for name, layer in self.net.named_children():  # layer by layer, each with its parameters
            own = {key.removeprefix(name + "."): value for key, value in params.items()
                   if key.startswith(name + ".")}
            with torch.autocast(X.device.type, dtype=torch.bfloat16,
                                enabled=name in self.bf16_layers):
                X = functional_call(layer, own, (X,))
            X = X.float()
        return X

    def _loss(self, params, X, y):
        y_hat = self._forward(params, X)
        loss = F.cross_entropy(y_hat, y)
        return loss, (loss.detach(), (y_hat.argmax(dim=1) == y).sum())

    def _step(self, params, images, labels, idx):
        X, y = to_float(images[idx]).contiguous(memory_format=self.memory_format), labels[idx]
        grads, (loss, correct) = grad(self._loss, has_aux=True)(params, X, y)
        with torch.no_grad():
            torch._foreach_add_(params, grads, alpha=-self.lr)
        return loss * y.numel(), correct

    def __call__(self, idx):
        check_indices(idx, self.labels)  # a 1-D int64 tensor of indices into the data
        return self.step(self.params, self.images, self.labels, idx)


_fused_call = FusedStep.__call__


def _check_unchanged(step):
    """A step updates the tensors captured when the FusedStep was built: a network changed since
    (a layer replaced, net.double(), net.to(...)) would no longer be the one trained. Nor may a
    parameter be frozen since: the update, p -= lr * grad, takes every captured tensor (the
    network was refused at build if any was frozen then)."""
    now = list(step.net.named_parameters())
    if ([name for name, _ in now] != step.names
            or any(p.data_ptr() != q.data_ptr() or p.dtype != q.dtype or p.device != q.device
                   for (_, p), q in zip(now, step.params))):
        raise ValueError("the network changed after FusedStep was built (a layer replaced, or "
                         "its weights converted or moved, e.g. net.double() or net.to(...)): "
                         "the step would keep updating the old weights and leave the network "
                         "as it is; build a new FusedStep(net, images, labels)")
    frozen = [name for name, p in now if not p.requires_grad]
    if frozen:
        raise ValueError(f"{len(frozen)} parameter(s) of the network were frozen after "
                         f"FusedStep was built (requires_grad=False: {', '.join(frozen[:4])}"
                         f"{' ...' if len(frozen) > 4 else ''}), but FusedStep trains every "
                         "parameter (its update, p -= lr * grad, takes them all) and would "
                         "train them anyway; to freeze layers, train the network with "
                         "lenet_book.train.train, which leaves frozen layers as they are, or "
                         "unfreeze them (net.requires_grad_(True))")


@functools.wraps(_fused_call)
def _call_unchanged(self, idx):
    """The step, on the network it was built for (``_check_unchanged``)."""
    _check_unchanged(self)
    if (isinstance(idx, torch.Tensor) and idx.dim() == 1 and len(idx) == 1
            and not getattr(self, "_one_image_taken", False)):
        # a batch of one: a forward that drops its batch dimension (.squeeze()) was let in
        problem = _input_problem(self.net, *self.images.shape[1:],
                                 batch_of_one="idx holds one image")
        if problem:
            raise ValueError(f"FusedStep: {problem}")
        self._one_image_taken = True
    try:
        return _fused_call(self, idx)
    except Exception as error:
        if type(error).__name__ != "FailOnRecompileLimitHit":
            raise
        # dynamo refuses before the step runs: the weights are as they were
        limit = getattr(torch._dynamo.config, "recompile_limit", "a few")
        raise ValueError(f"FusedStep: torch.compile keeps at most {limit} compiled versions of "
                         "the training step in one Python process "
                         "(torch._dynamo.config.recompile_limit), one for each batch size and "
                         "setting (backend, mode, bf16_layers, channels_last, lr) it was "
                         f"called with, and this batch of {len(idx)} images needs one more; "
                         "nothing was trained. Build a new FusedStep (each new one starts with "
                         "room for an epoch's full and last batch; train_fused builds one every "
                         "call), or call torch._dynamo.reset() (it drops every compiled "
                         "version), or restart the kernel") from None


# Chapter 4 shows FusedStep as written above; the check runs around its __call__
FusedStep.__call__ = _call_unchanged


def _check_nothing_frozen(who, net):
    """FusedStep's update, p -= lr * grad, takes every parameter: the frozen ones of a partly
    frozen network would be trained too (a wholly frozen one is refused by the checks)."""
    if not isinstance(net, torch.nn.Module):
        return  # named by the checks
    params = list(net.named_parameters())
    frozen = [name for name, p in params if not p.requires_grad]
    if frozen and len(frozen) < len(params):
        raise ValueError(f"{who} trains every parameter of the network (its update, p -= lr * "
                         f"grad, takes them all), but {len(frozen)} of them are frozen "
                         f"(requires_grad=False: {', '.join(frozen[:4])}"
                         f"{' ...' if len(frozen) > 4 else ''}) and would be trained anyway; "
                         "unfreeze them (net.requires_grad_(True)), or train the network with "
                         "lenet_book.train.train, which leaves frozen layers as they are")


def _check_not_compiled(who, net):
    """The step is compiled here, as a pure function of the network's weights (torch.func): a
    torch.compile'd network inside it would be compiled twice, which dynamo refuses."""
    if hasattr(net, "_orig_mod"):
        raise TypeError(f"{who} compiles the training step itself: pass the network, not "
                        "torch.compile(net) (or what compile_and_warm_up returned); the network "
                        "inside is net._orig_mod")


def _check_bf16_layers_run_the_forward(who, net, bf16_layers):
    """With bf16_layers the step runs the network's children one after another (as
    nn.Sequential's forward does), not the network's own forward: a network with a forward of its
    own, or weights outside its children, would be trained as another function."""
    if (not isinstance(net, torch.nn.Module) or not bf16_layers
            or not isinstance(bf16_layers, (tuple, list, set, frozenset))):
        return  # no bf16 layers, or named by the other checks
    problems = []
    if getattr(net.forward, "__func__", None) is not torch.nn.Sequential.forward:
        problems.append(f"this network ({type(net).__name__}) has a forward of its own, which "
                        "would not run (what it does between or after its layers, e.g. pooling, "
                        "flatten or a scale, would be left out)")
    own = [*net._parameters, *net._buffers]  # registered on the network itself, not in a child
    if own:
        problems.append(f"it holds parameters or buffers outside its layers ({', '.join(own[:4])}"
                        f"{' ...' if len(own) > 4 else ''}), which the layers alone would not "
                        "use or train")
    hooks = [hook for name in ("_forward_pre_hooks", "_forward_hooks")
             for hook in getattr(net, name, {}).values() if _own_hook(hook)]
    if hooks:
        problems.append(f"the network has {len(hooks)} forward hook{'s' * (len(hooks) != 1)} or "
                        "pre-hook of its own (e.g. one that pads the images or scales the "
                        "scores), which would not run: it belongs to the network's own call")
    if problems:
        raise ValueError(f"{who}: bf16_layers runs the network's children one after another, as "
                         "nn.Sequential's forward does, each named one in bfloat16; but "
                         f"{'; and '.join(problems)}. Compute those layers in bfloat16 inside "
                         "the network's forward instead (with torch.autocast(device_type, "
                         "dtype=torch.bfloat16): ..., then .float()), or write the network as "
                         "an nn.Sequential (e.g. fast.lenet(), its layers named by index), or "
                         "leave bf16_layers out (the step then runs the network's own forward)")


def _check_fused_step_options(self, net, images, labels, lr=0.9, compile=True,
                              backend="inductor", mode=None, channels_last=False, bf16_layers=()):
    _check_not_compiled("FusedStep", net)
    if _is_flag(compile) and not compile:  # as the recipes refuse options they would ignore
        for name, value in (("mode", mode), ("backend", backend)):
            if not _compiler_default(name, value):
                raise ValueError(f"FusedStep: {name}={_brief(value)} goes to torch.compile, and "
                                 f"compile=False runs the step without compiling it, so it "
                                 f"would be ignored: leave {name} out, or pass compile=True")
    _check_fused_options({"backend": backend, "mode": mode, "bf16_layers": bf16_layers})
    _check_nothing_frozen("FusedStep", net)
    _check_bf16_layers_run_the_forward("FusedStep", net, bf16_layers)


def _compiled_versions(code):
    """How many compiled versions dynamo keeps for ``code`` (None where this torch cannot say)."""
    entries = getattr(torch._dynamo.eval_frame, "_debug_get_cache_entry_list", None)
    return len(entries(code)) if entries is not None else None


@contextlib.contextmanager
def _room_to_compile(bound):
    """Every FusedStep compiles the one function FusedStep._step, and dynamo keeps at most
    recompile_limit (8) versions of a function: with fullgraph=True one more is an error, not
    eager code. A sweep of batch sizes or settings in one session (each a full and a last
    batch) would reach it, so a new compiled step drops the old versions when it would need
    more room than is left (other steps then compile again at their next call)."""
    compile = bound.arguments["compile"]
    if _is_flag(compile) and compile:
        import torch._dynamo  # noqa: F401  (imported by torch.compile anyway)

        code = FusedStep._step.__code__
        count = _compiled_versions(code)
        reset = getattr(torch._dynamo, "reset_code", None)
        limit = getattr(torch._dynamo.config, "recompile_limit", None)
        if None not in (count, reset, limit) and count + 2 > limit:
            with getattr(torch._dynamo.convert_frame, "compile_lock", contextlib.nullcontext()):
                reset(code)
    yield


# ... and its compiler options are checked before it is built (lenet_book.checks)
FusedStep.__init__ = at_the_door(FusedStep.__init__, _check_fused_step_options,
                                 around=_room_to_compile)


def warm_up(step, batches, steps=3):
    """Run ``step`` on a few full batches and on the short last one, then put the weights back.

    This compiles the step for every batch shape an epoch uses (full batches and the short
    tail), so that neither the timer nor a CUDA graph recording sees a compilation.
    """
    if not isinstance(step, FusedStep):
        raise TypeError(f"warm_up runs a FusedStep: step must be one, e.g. FusedStep(net, images, "
                        f"labels), got {_a_kind(step)}")
    check_whole("warm_up: steps", steps)
    if (isinstance(batches, (str, bytes, torch.Tensor)) or not hasattr(batches, "__getitem__")
            or not batches):
        raise TypeError("warm_up: batches must be a non-empty list of index batches, e.g. "
                        "torch.arange(len(labels)).split(256)")
    for idx in [*batches[:steps], batches[-1]]:  # the batches it runs
        try:
            check_indices(idx, step.labels)
        except (TypeError, ValueError) as error:
            raise type(error)(f"warm_up: batches must hold index batches: {error}") from None
    start = [p.clone() for p in step.params]
    tail = [batches[-1]] if len(batches) > 1 and len(batches[-1]) != len(batches[0]) else []
    for idx in list(batches[:steps]) + tail:
        step(idx)
    with torch.no_grad():
        torch._foreach_copy_(step.params, start)


class FusedEpochGraph:
    """One epoch of fused steps recorded as a CUDA graph (the fused twin of ``fast.EpochGraph``).

    Each step reads its batch from a slice of one static index tensor; ``run(order)`` copies the
    epoch's shuffled order into it and replays. The step is compiled and warmed up on a side
    stream before recording (compiling while recording breaks the capture), and the weights that
    warm-up and recording changed are put back afterwards.
    """

    def __init__(self, step, batch_size):
        if not isinstance(step, FusedStep):
            raise TypeError(f"FusedEpochGraph records a FusedStep: step must be one, e.g. "
                            f"FusedStep(net, images, labels), got {_a_kind(step)}")
        check_whole("batch_size", batch_size)
        if step.images.device.type != "cuda":
            raise ValueError(f"FusedEpochGraph records a CUDA graph, which needs the data on a "
                             f"CUDA device; the step's data is on {step.images.device}: move it "
                             "with .cuda(), or run the step without a graph")
        device = step.images.device
        self.index = torch.arange(len(step.labels), device=device)
        self.loss_sum = torch.zeros((), device=device)
        self.correct = torch.zeros((), device=device, dtype=torch.int64)
        batches = self.index.split(batch_size)
        start = [p.clone() for p in step.params]
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            warm_up(step, batches)
        torch.cuda.current_stream(device).wait_stream(side)
        self.step = step
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.loss_sum.zero_()
            self.correct.zero_()
            for idx in batches:
                loss_sum, correct = step(idx)
                self.loss_sum += loss_sum
                self.correct += correct
        with torch.no_grad():  # undo what recording did to the weights
            torch._foreach_copy_(step.params, start)

    def run(self, order):
        _check_unchanged(self.step)  # the replay runs no step: a network changed since is named
        self.index.copy_(order)
        self.graph.replay()
        return self.loss_sum, self.correct


def train_fused(net, train_data, test_data, num_epochs=10, lr=0.9, batch_size=256, seed=0,
                cuda_graph=True, on_epoch=None, mode=None, backend="inductor", channels_last=False,
                bf16_layers=()):
    """Train ``net`` with the recipe of train_ch6, each step one compiled function.

    Same interface and results as ``fast.train_fast``: one dict per epoch (loss, train_acc,
    test_acc) and the seconds spent in the training steps. Compilation (and, with
    ``cuda_graph=True`` on a GPU, the recording of the epoch graph) happens before the timer
    starts; its time is in the returned history's ``setup_seconds`` of the first epoch.
    ``channels_last=True`` keeps the weights and batches in the channels-last layout;
    ``bf16_layers`` computes those layers in bfloat16 (see ``FusedStep``).
    """
    num_epochs, batch_size, seed = check_training(**locals())  # every argument, as ints (checks)
    images, labels = train_data
    device = images.device
    net.to(device, memory_format=torch.channels_last if channels_last else torch.preserve_format)
    net.train()
    generator = torch.Generator(device=device).manual_seed(seed)
    setup_start = time.perf_counter()
    step = FusedStep(net, images, labels, lr=lr, backend=backend, mode=mode,
                     channels_last=channels_last, bf16_layers=bf16_layers)
    if cuda_graph:
        graph = FusedEpochGraph(step, batch_size)
    else:
        graph = None
        warm_up(step, torch.arange(len(labels), device=device).split(batch_size))
    synchronize(device)
    setup_seconds = time.perf_counter() - setup_start
    history, seconds = [], 0.0
    for epoch in range(num_epochs):
        synchronize(device)
        start = time.perf_counter()
        net.train()
        order = torch.randperm(len(labels), generator=generator, device=device)
        step_losses = []  # per step, to name the step where a loss stops being finite
        if graph:
            loss_sum, correct = graph.run(order)
        else:
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), device=device, dtype=torch.int64)
            for idx in order.split(batch_size):
                step_loss, step_correct = step(idx)
                loss_sum += step_loss
                correct += step_correct
                step_losses.append(step_loss)
        synchronize(device)
        seconds += time.perf_counter() - start
        history.append({"epoch": epoch + 1, "loss": loss_sum.item() / len(labels),
                        "train_acc": correct.item() / len(labels)})
        check_finite_loss(history[-1], step_losses, lr)  # stops a diverging run (checks)
        history[-1]["test_acc"] = evaluate(net, *test_data)
        if epoch == 0:
            history[0]["setup_seconds"] = setup_seconds
        if on_epoch:
            on_epoch(history[-1])
    return history, seconds


def _check_train_fused(net, *args, **options):
    # before the body moves the network (device, channels-last) and builds its FusedStep
    check_no_device_given(train_fused, (net, *args), options)
    _check_not_compiled("train_fused", net)
    _check_nothing_frozen("train_fused", net)
    # bf16_layers is train_fused's 13th parameter: args[11] after net
    layers = options.get("bf16_layers", args[11] if len(args) > 11 else ())
    _check_bf16_layers_run_the_forward("train_fused", net, layers)


# chapter 4 shows it as written; the call is checked, on_epoch gets a copy of each epoch's dict
train_fused = at_the_door(train_fused, _check_train_fused, around=_as_train_leaves_it)
