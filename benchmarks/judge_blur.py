"""Is the judge's low reading of G's style a brittle judge? Train a second judge that also sees blurred and noisy pictures, and re-measure.

    python benchmarks/judge_blur.py --run runs/notebooks-cpu [--json benchmarks/results/cpu_judge_blur.json]

The run's judge learns from sharp pictures, shifted at random. If it told artists apart only by detail a pixel wide
(paper grain, hair strands), a generator that drew every artist's way of drawing a little softly would read as
nobody's, and the judge's style fidelity would say more about the judge than about G. This benchmark:

1. copies the run (its images linked, its S, Enc and GAN copied) to `<run>-judge-blur`;
2. trains a judge there exactly as `train_judge` does, except that half the training pictures are also resized to
   between a half and the whole side and back (a blur), and half get Gaussian noise of up to 0.06 (in RGB [0, 1]);
3. reads the held-out real pictures sharp, at half resolution (32 px and back) and with noise 0.05, with both judges;
4. re-measures the run's GAN with the second judge (`measure_gan`), and prints each judge measure beside the run's.
"""
import argparse, json, os, shutil, time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from fastai.callback.core import Callback

import animestyle.judge as J
from animestyle.core import RunDir
from animestyle.data.loaders import prepare_data
from animestyle.gan_train import measure_gan


def degrade(x, p=0.5, smallest=0.5, noise=0.06):
    "Half the images resized to a random side in [`smallest`, 1) of theirs and back; half with Gaussian noise up to `noise`."
    B, C, H, W = x.shape
    out = x.clone()
    for i in torch.nonzero(torch.rand(B) < p).flatten().tolist():
        s = int(torch.randint(int(H*smallest), H, ()))
        small = F.interpolate(out[i:i+1], size=(s, s), mode='bilinear', antialias=True, align_corners=False)
        out[i:i+1] = F.interpolate(small, size=(H, W), mode='bilinear', align_corners=False)
    sigma = (torch.rand(B, 1, 1, 1) < p).float()*torch.rand(B, 1, 1, 1)*noise
    return (out + sigma.to(x)*torch.randn_like(out)).clamp(0, 1)


class ShiftDegrade(Callback):
    "The judge's random shift, then `degrade`, on training batches."
    order = 2
    def __init__(self, frac=1/16): self.frac = frac
    def before_batch(self):
        if self.training: self.learn.xb = (degrade(J.random_shift(self.learn.xb[0], self.frac)), *self.learn.xb[1:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--run', required=True); ap.add_argument('--json', default='')
    a = ap.parse_args()
    src = Path(a.run); dst = src.with_name(src.name + '-judge-blur')
    if not dst.exists():
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns('data', 'judge', 'report'))
        shutil.copytree(src/'data', dst/'data', copy_function=os.link)
    J.RandomShift = ShiftDegrade  # train_judge builds its augmentation from this name
    run = RunDir(dst, create=False)
    judge = J.train_judge(run, device='cpu')
    cache = prepare_data(run); m = cache.manifest
    idx = np.flatnonzero(m.split.values == 'test'); art = m.artist_id.values[idx]
    x = torch.from_numpy(np.asarray(cache.images[idx])).permute(0, 3, 1, 2).float()/255
    views = {'sharp': x, 'half resolution': F.interpolate(F.interpolate(x, size=(32, 32), mode='bilinear', antialias=True), size=x.shape[-2:], mode='bilinear'),
             'noise 0.05': (x + 0.05*torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)}
    out = dict(run=str(src), date=time.strftime('%Y-%m-%d'), judge_train_seconds=judge.metrics['train_seconds'], held_out={})
    for name, jd in [('run judge', J.load_judge(RunDir(src, create=False), 'cpu')), ('blur judge', judge)]:
        acc = {k: float((J.judge_read(jd, (v*255).round().byte().permute(0, 2, 3, 1))['artist_id'].to_numpy() == art).mean()) for k, v in views.items()}
        out['held_out'][name] = acc
        print(f"{name:10s} artist on held-out real pictures: " + ', '.join(f"{k} {v:.3f}" for k, v in acc.items()))
    new, old = measure_gan(run, device='cpu'), json.loads((src/'gan'/'metrics.json').read_text())
    keys = ('judge_style_fidelity', 'judge_content_recovery', 'row_consistency', 'column_consistency', 'judge_fd', 'judge_fd_floor')
    out['gan'] = {k: dict(run_judge=old[k], blur_judge=new[k]) for k in keys}
    out['factors'] = {f: dict(real=[old['judge_style_factors_real'][f], new['judge_style_factors_real'][f]],
                              gan=[old['judge_style_factors_gan'][f], new['judge_style_factors_gan'][f]])
                      for f in new.get('judge_style_factors_gan', {})}
    for k in keys: print(f"{k:24s} run judge {old[k]:8.3f}   blur judge {new[k]:8.3f}")
    print(f"{'judge FD / floor':24s} run judge {old['judge_fd']/old['judge_fd_floor']:8.1f}   blur judge {new['judge_fd']/new['judge_fd_floor']:8.1f}")
    if a.json: Path(a.json).write_text(json.dumps(out, indent=1))


if __name__ == '__main__': main()
