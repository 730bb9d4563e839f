"Model tests of the Table 1 networks (timm style): shapes per preset, every parameter gets a gradient, no NaN, clear errors."
import pytest
import torch

from animestyle.core import get_preset
from animestyle.layers import (ContentDecoder, ContentEncoder, Discriminator, Generator, LayerError, ResNetDecoder,
                               ResNetEncoder, StyleEncoder, check_gradients, level_blocks, param_count)


def _nets(p, bs=2):
    "(name, network, input) for the five networks at preset `p`."
    S = p.image_size
    img = torch.randn(bs, 3, S, S)
    return [('S', StyleEncoder(p), img), ('Enc', ContentEncoder(p), img),
            ('Dec', ContentDecoder(p), torch.randn(bs, p.d_style + p.content_dim)),
            ('G', Generator(p), torch.randn(bs, p.code_dim)), ('D', Discriminator(p), img[..., :S // 4, :S // 4])]


def _expected(name, p, bs):
    S = p.image_size
    return {'S': (bs, p.style_dim), 'Enc': ((bs, p.content_dim), (bs, p.content_dim)),
            'Dec': (bs, 3, S, S), 'G': (bs, 3, S, S), 'D': (bs,)}[name]


def _shape(out): return tuple(tuple(o.shape) for o in out) if isinstance(out, tuple) else tuple(out.shape)


@pytest.mark.parametrize('preset', ['tiny', 'cpu'])
def test_forward_backward_every_parameter(preset):
    torch.manual_seed(0)
    p = get_preset(preset)
    for name, net, x in _nets(p):
        out = net(x)
        assert _shape(out) == _expected(name, p, 2), name
        assert check_gradients(net, x) == [], name


def test_paper_shapes_batch_of_one():
    "Table 1 verbatim at 256 px: forward only, batch of 1."
    p = get_preset('paper')
    with torch.no_grad():
        for name, net, x in _nets(p, bs=1):
            out = net(x)
            assert _shape(out) == _expected(name, p, 1), name
            assert all(torch.isfinite(o).all() for o in (out if isinstance(out, tuple) else (out,))), name


def test_paper_levels():
    p = get_preset('paper')
    assert StyleEncoder(p).blocks_per_level == (1, 1, 1, 1, 1)
    assert ContentEncoder(p).blocks_per_level == (0, 1, 1, 1, 1, 1)
    assert Generator(p).blocks_per_level == (0, 2, 2, 2, 2, 2)
    assert Discriminator(p).out_size == 8  # 64 px crops, 4 levels
    assert StyleEncoder(p).out_size == 16  # 256 px, 5 levels, no stride-2 pooling after the first conv


def test_weight_norm_everywhere_no_batchnorm():
    for _, net, _ in _nets(get_preset('tiny')):
        for m in net.modules():
            assert not isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                assert hasattr(m, 'parametrizations') and 'weight' in m.parametrizations


def test_gradient_check_catches_dead_layer():
    p = get_preset('tiny')
    net = StyleEncoder(p)
    net.head.parametrizations.weight.original0.data.zero_()
    dead = check_gradients(net, torch.randn(2, 3, p.image_size, p.image_size))
    assert any(n.startswith('stem') for n in dead)


def test_blocks_change_params():
    p = get_preset('tiny')
    a = param_count(Generator(p))
    b = param_count(Generator(get_preset('tiny', gen_blocks='2,2')))
    assert b > a


def test_bad_sizes_and_inputs():
    with pytest.raises(LayerError, match='block counts'): level_blocks((8, 16, 32), (1,))
    with pytest.raises(LayerError, match='divisible'): ResNetEncoder((8, 16, 32), (1, 1, 1), 4, image_size=30)
    with pytest.raises(LayerError, match='head must be'): ResNetEncoder((8,), (1,), 4, image_size=8, head='max')
    p = get_preset('tiny')
    with pytest.raises(LayerError, match=r'expected images \(B,3,H,W\)'): StyleEncoder(p)(torch.randn(2, 1, 32, 32))
    with pytest.raises(LayerError, match='takes 32×32'): ContentEncoder(p)(torch.randn(2, 3, 16, 16))
    with pytest.raises(LayerError, match='expected codes'): Generator(p)(torch.randn(2, 5))
    assert issubclass(LayerError, ValueError)


def test_pooled_encoder_is_size_agnostic():
    p = get_preset('tiny')
    assert StyleEncoder(p)(torch.randn(1, 3, 64, 64)).shape == (1, p.style_dim)
    assert ResNetDecoder((8, 16), (1, 1), 4, image_size=16)(torch.randn(3, 4)).shape == (3, 3, 16, 16)


def test_data_init_normalises_every_layer_in_forward_order():
    from animestyle.layers import data_init
    torch.manual_seed(0)
    p = get_preset('tiny')
    net = StyleEncoder(p)
    x = torch.rand(32, 3, p.image_size, p.image_size) * 2 - 1
    data_init(net, x)
    stats = []
    hooks = [m.register_forward_hook(lambda m, i, o: stats.append((o.transpose(0, 1).flatten(1).mean(1), o.transpose(0, 1).flatten(1).std(1))))
             for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    net(x)
    for h in hooks: h.remove()
    assert len(stats) > 5
    for mean, std in stats:  # every layer, not only the last, sees its own statistics after the earlier layers changed
        assert mean.abs().max() < 1e-3 and (std - 1).abs().max() < 1e-3
    with pytest.raises(LayerError): data_init(torch.nn.Conv2d(3, 3, 1), x)
