"""One forward and backward pass of each `cpu` network at batch 32, in fp32 and bf16, with and without channels_last.

    python benchmarks/cpu_bf16.py

Prints milliseconds per step for G (a loss on its output), D (its logits on real images with their codes) and S (the
gradient to its input, as eq. 8 needs), on 2 threads. bf16 pays only on a CPU that multiplies it natively (AMX or
AVX-512 BF16, which `core.cpu_bf16()` detects); elsewhere it is emulated and slower.
"""
import contextlib, time

import torch

from animestyle.core import cpu_bf16, get_preset
from animestyle.gan import build_critic, build_generator
from animestyle.layers import StyleEncoder


def ms_per_step(f, n=6):
    f(); f()
    t = time.perf_counter()
    for _ in range(n): f()
    return (time.perf_counter() - t) / n * 1000


def main(B=32):
    torch.set_num_threads(2)
    p = get_preset('cpu')
    print(f"native bf16 on this CPU: {cpu_bf16()}")
    for cl in (False, True):
        for bf in (False, True):
            torch.manual_seed(0)
            mf = torch.channels_last if cl else torch.contiguous_format
            G, D, S = (m.to(memory_format=mf) for m in (build_generator(p), build_critic(p, p.synth_artists), StyleEncoder(p)))
            z, x = torch.randn(B, p.code_dim), torch.randn(B, 3, p.image_size, p.image_size).to(memory_format=mf)
            ctx = (lambda: torch.autocast('cpu', dtype=torch.bfloat16)) if bf else contextlib.nullcontext
            def g():
                with ctx(): l = G(z).float().pow(2).mean()
                l.backward()
            def d():
                with ctx(): l = D(x, z[:, :p.d_style + p.d_content])[0].float().mean()
                l.backward()
            def s():
                xx = x.clone().requires_grad_()
                with ctx(): l = S(xx).float().mean()
                l.backward()
            print(f"channels_last={cl} bf16={bf}: G {ms_per_step(g):.0f} ms, D {ms_per_step(d):.0f} ms, "
                  f"S (input gradient) {ms_per_step(s):.0f} ms", flush=True)


if __name__ == '__main__': main()
