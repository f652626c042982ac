"""The bundled presets give the outputs they gave when they were trained.

`data/bundled_preset_outputs.npz` was written at commit 1c80812 (before the
package was restructured) from smooth random images: each preset's codes,
reconstructions, decoded codes, the prior's log-likelihood of those codes
and two prior samples (seed 0). Any change in layout, naming or config
format must leave all of them unchanged. A retrained preset's entries are
rewritten (the others kept) with
`python tests/test_bundled_presets.py --update NAME`.
"""

import sys
from pathlib import Path

import numpy as np
import pytest

from keras_vqvae.models import VQVAE
from keras_vqvae.models import PixelCNNPrior

GOLDEN = Path(__file__).parent / "data" / "bundled_preset_outputs.npz"
PRESETS = ["mnist", "fashion_mnist", "cifar10", "imagenet_128"]
# Presets whose prior is an `ActionConditionalPrior` over frame codes.
VIDEO_PRESETS = ["crafter_84"]
# `SpeechVQVAE` presets: codes, teacher-forced log-likelihoods, generated audio.
SPEECH_PRESETS = ["speech_fillets", "speech_espeak"]


@pytest.fixture(scope="module")
def golden():
    with np.load(GOLDEN) as arrays:
        return {key: arrays[key] for key in arrays.files}


@pytest.mark.parametrize("name", PRESETS + VIDEO_PRESETS)
def test_codes_and_reconstructions_are_unchanged(golden, name):
    model = VQVAE.from_preset(name)
    images = golden[f"{name}/images"]
    codes = model.encode(images)
    np.testing.assert_array_equal(codes, golden[f"{name}/codes"])
    np.testing.assert_array_equal(
        model.reconstruct(images), golden[f"{name}/reconstructions"]
    )
    np.testing.assert_array_equal(
        model.decode_indices(codes), golden[f"{name}/decoded"]
    )


@pytest.mark.parametrize("name", PRESETS)
def test_prior_likelihoods_and_samples_are_unchanged(golden, name):
    prior = PixelCNNPrior.from_preset(name)
    codes = golden[f"{name}/codes"].astype("int32")
    labels = golden.get(f"{name}/labels")
    np.testing.assert_allclose(
        prior.log_prob(codes, labels=labels),
        golden[f"{name}/log_prob"],
        rtol=1e-5,
    )
    sample_labels = None if labels is None else labels[:2]
    samples = prior.sample(2, labels=sample_labels, seed=0)
    np.testing.assert_array_equal(samples, golden[f"{name}/samples"])


@pytest.mark.parametrize("name", VIDEO_PRESETS)
def test_next_frame_scores_and_rollouts_are_unchanged(golden, name):
    from keras_vqvae.models import ActionConditionalPrior

    prior = ActionConditionalPrior.from_preset(name)
    codes = golden[f"{name}/codes"].astype("int32")
    context, actions = _video_inputs(codes)
    log_prob, _ = prior.next_frame_scores(codes, context, actions)
    np.testing.assert_allclose(log_prob, golden[f"{name}/log_prob"], rtol=1e-5)
    rollout = prior.rollout(context[:2], np.stack([actions[:2]] * 2, 1), seed=0)
    np.testing.assert_array_equal(rollout, golden[f"{name}/samples"])


def _video_inputs(codes):
    """Each golden image's context: every image's codes, in a fixed order;
    actions cycling through the first ones."""
    order = np.arange(len(codes))
    context = np.stack([codes[np.roll(order, k)] for k in (2, 1)], axis=1)
    return context, order % 5


@pytest.mark.parametrize("name", SPEECH_PRESETS)
def test_speech_codes_likelihoods_and_generated_audio_are_unchanged(
    golden, name
):
    outputs = _speech_golden_outputs(name, golden[f"{name}/audio"])
    np.testing.assert_array_equal(outputs["codes"], golden[f"{name}/codes"])
    np.testing.assert_allclose(
        outputs["log_prob"], golden[f"{name}/log_prob"], rtol=1e-4, atol=1e-4
    )
    np.testing.assert_array_equal(
        outputs["generated"], golden[f"{name}/generated"]
    )


def _speech_golden_outputs(name, audio):
    """A speech preset's codes of `audio`, the teacher-forced log-likelihood
    of each of its mu-law levels (as the last speaker) and the audio it
    generates from the first two codes (seed 0)."""
    from keras_vqvae.audio import mu_law_encode
    from keras_vqvae.models import SpeechVQVAE

    model = SpeechVQVAE.from_preset(name)
    codes = model.encode(audio)
    batch = model.prepare_audio(audio)[None]
    speaker = len(model.speakers) - 1
    logits = model.predict_on_batch([batch, np.array([speaker], "int32")])
    logits = np.asarray(logits, "float64")[0]
    logits -= logits.max(-1, keepdims=True)
    levels = np.asarray(mu_law_encode(batch[0, :, 0]))
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return {
        "audio": audio,
        "codes": codes,
        "log_prob": np.take_along_axis(log_softmax, levels[:, None], 1)[:, 0],
        "generated": model.decode(codes[:2], speaker=speaker, seed=0),
    }


def speech_test_audio(seconds=0.25, sample_rate=16000, seed=0):
    """A voiced-like test clip: a gliding tone with harmonics and noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    phase = 2 * np.pi * (120 * t + 80 * t**2)
    tone = sum(np.sin(k * phase) / k for k in range(1, 6))
    return (0.3 * tone + 0.01 * rng.standard_normal(len(t))).astype("float32")


@pytest.mark.parametrize("name", PRESETS)
def test_bundled_configs_hold_their_table_entries(name):
    from keras_vqvae.models import PIXELCNN_PRIOR_PRESETS
    from keras_vqvae.models import VQVAE_PRESETS
    from keras_vqvae.presets import PresetFolder

    folder = PresetFolder.resolve(name)
    saved = folder.saved_config("model")["config"]
    for key, value in VQVAE_PRESETS[name]["config"].items():
        assert saved[key] == (
            list(value) if isinstance(value, tuple) else value
        ), key
    saved_prior = folder.saved_config("prior")["config"]
    for key, value in PIXELCNN_PRIOR_PRESETS[name]["config"].items():
        assert saved_prior[key] == value, key
    assert set(VQVAE.presets) == set(VQVAE_PRESETS)
    assert set(PixelCNNPrior.presets) == set(PIXELCNN_PRIOR_PRESETS)


def golden_outputs(name, images, labels=None):
    """The golden entries of preset `name` for uint8 `images`."""
    model = VQVAE.from_preset(name)
    if name in VIDEO_PRESETS:
        return _video_golden_outputs(name, model, images)
    prior = PixelCNNPrior.from_preset(name)
    codes = model.encode(images)
    if prior.num_classes and labels is None:
        labels = np.arange(len(images)) % prior.num_classes
    outputs = {
        "images": images,
        "codes": codes,
        "reconstructions": model.reconstruct(images),
        "decoded": model.decode_indices(codes),
        "log_prob": prior.log_prob(codes.astype("int32"), labels=labels),
        "samples": prior.sample(
            2, labels=None if labels is None else labels[:2], seed=0
        ),
    }
    if labels is not None:
        outputs["labels"] = np.asarray(labels)
    return {f"{name}/{key}": value for key, value in outputs.items()}


def _video_golden_outputs(name, model, images):
    from keras_vqvae.models import ActionConditionalPrior

    prior = ActionConditionalPrior.from_preset(name)
    codes = model.encode(images)
    context, actions = _video_inputs(codes.astype("int32"))
    outputs = {
        "images": images,
        "codes": codes,
        "reconstructions": model.reconstruct(images),
        "decoded": model.decode_indices(codes),
        "log_prob": prior.next_frame_scores(codes, context, actions)[0],
        "samples": prior.rollout(
            context[:2], np.stack([actions[:2]] * 2, 1), seed=0
        ),
    }
    return {f"{name}/{key}": value for key, value in outputs.items()}


def smooth_images(shape, count, seed=0):
    """uint8 images of smooth random colour fields (bilinear upsampling of
    a random 4x4 field), for presets that have no golden images yet."""
    rng = np.random.default_rng(seed)
    h, w, c = shape
    coarse = rng.uniform(0, 255, (count, 4, 4, c))
    rows = np.linspace(0, 3, h)
    cols = np.linspace(0, 3, w)
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    r1, c1 = np.minimum(r0 + 1, 3), np.minimum(c0 + 1, 3)
    fr, fc = (rows - r0)[:, None, None], (cols - c0)[None, :, None]
    top = coarse[:, r0][:, :, c0] * (1 - fc) + coarse[:, r0][:, :, c1] * fc
    bottom = coarse[:, r1][:, :, c0] * (1 - fc) + coarse[:, r1][:, :, c1] * fc
    return np.round(top * (1 - fr) + bottom * fr).astype("uint8")


def update_golden(names):
    """Rewrites the entries of the presets `names`, on their old inputs
    (new ones for a new preset)."""
    with np.load(GOLDEN) as arrays:
        entries = {key: arrays[key] for key in arrays.files}
    for name in names:
        old = {k: v for k, v in entries.items() if k.startswith(name + "/")}
        for key in old:
            del entries[key]
        entries.update(_new_golden_entries(name, old))
    np.savez_compressed(GOLDEN, **entries)


def _new_golden_entries(name, old):
    if name in SPEECH_PRESETS:
        audio = old.get(f"{name}/audio", speech_test_audio())
        outputs = _speech_golden_outputs(name, audio)
        return {f"{name}/{key}": value for key, value in outputs.items()}
    images = old.get(f"{name}/images")
    if images is None:
        shape = VQVAE.from_preset(name).image_shape
        images = smooth_images(tuple(shape), count=4)
    return golden_outputs(name, images)


if __name__ == "__main__":
    if sys.argv[1:2] != ["--update"] or len(sys.argv) < 3:
        sys.exit("usage: python tests/test_bundled_presets.py --update NAME...")
    update_golden(sys.argv[2:])
