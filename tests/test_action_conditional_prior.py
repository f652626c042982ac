"""Tests for the action-conditional next-frame prior."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_vqvae.errors import DataError
from keras_vqvae.models import ActionConditionalPrior

H, W, K, ACTIONS = 5, 6, 6, 3


def _np(x):
    return np.asarray(ops.convert_to_numpy(x))


def _prior(**kwargs):
    config = dict(
        num_embeddings=K,
        latent_shape=(H, W),
        num_actions=ACTIONS,
        context_frames=2,
        context_dim=8,
        context_layers=1,
        context_embedding_dim=4,
        hidden_dim=8,
        num_layers=3,
        kernel_size=3,
    )
    return ActionConditionalPrior(**{**config, **kwargs})


def _inputs(n, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "codes": rng.integers(0, K, (n, H, W)).astype("int32"),
        "context": rng.integers(0, K, (n, 2, H, W)).astype("int32"),
        "actions": rng.integers(0, ACTIONS, (n,)).astype("int32"),
    }


def test_logits_see_the_past_of_the_frame_all_of_the_context_and_the_action():
    keras.utils.set_random_seed(0)
    model = _prior()
    inputs = _inputs(1)
    base = _np(model(inputs))
    assert base.shape == (1, H, W, K)

    def changed(**replace):
        return (
            np.abs(_np(model({**inputs, **replace})) - base).max(-1)[0] > 1e-6
        )

    codes = inputs["codes"].copy()
    codes[0, 2, 3] = (codes[0, 2, 3] + 1) % K
    diff = changed(codes=codes)
    raster = np.arange(H * W).reshape(H, W)
    assert not diff[raster <= raster[2, 3]].any()  # causal in the frame
    assert diff[raster > raster[2, 3]].any()
    context = inputs["context"].copy()
    context[0, 0, H - 1, W - 1] = (context[0, 0, H - 1, W - 1] + 1) % K
    # The last context position reaches the top-left positions' gates
    # through the context network: the context is not causal.
    assert changed(context=context)[H - 1, W - 1]
    actions = (inputs["actions"] + 1) % ACTIONS
    assert changed(actions=actions).all()


@pytest.mark.parametrize("temperature, seed", [(1.0, 0), (0.5, 3)])
def test_incremental_sampler_matches_the_reference_with_a_condition(
    temperature, seed
):
    keras.utils.set_random_seed(1)
    model = _prior(kernel_size=5)
    kernel = model.frame_prior.head_logits.kernel
    kernel.assign(_np(kernel) * 4.0)  # peaked: a wrong condition would show
    inputs = _inputs(5, seed=2)
    condition = model.context_features(inputs["context"], inputs["actions"])
    kwargs = dict(temperature=temperature, seed=seed, condition=condition)
    sample = model.frame_prior.sample
    fast = sample(5, **kwargs)
    np.testing.assert_array_equal(fast, sample(5, method="reference", **kwargs))
    np.testing.assert_array_equal(fast, sample(5, batch_size=2, **kwargs))
    np.testing.assert_array_equal(
        fast,
        model.predict_next(
            inputs["context"], inputs["actions"], temperature, seed
        ),
    )
    # The draws follow the logits of the full forward pass.
    logits = _np(model({**inputs, "codes": fast})).reshape(5, H * W, K)
    probs = np.exp(
        logits / temperature - (logits / temperature).max(-1, keepdims=True)
    )
    cdf = np.cumsum(probs / probs.sum(-1, keepdims=True), axis=-1)
    u = model.frame_prior._draw_uniforms(5, seed).T
    expected = np.minimum((cdf < u[..., None] * cdf[..., -1:]).sum(-1), K - 1)
    np.testing.assert_array_equal(fast.reshape(5, -1), expected)


def _shift_task(n, seed):
    """Random frames that the action moves: 0 keeps the frame, 1 moves it
    one column left, 2 one column right; the column that comes in is new.
    The older context frame is unrelated, so only the action tells."""
    rng = np.random.default_rng(seed)
    context = rng.integers(0, K, (n, 2, H, W)).astype("int32")
    actions = rng.integers(0, ACTIONS, (n,)).astype("int32")
    nxt = rng.integers(0, K, (n, H, W)).astype("int32")
    last = context[:, -1]
    nxt[actions == 0] = last[actions == 0]
    nxt[actions == 1, :, :-1] = last[actions == 1, :, 1:]
    nxt[actions == 2, :, 1:] = last[actions == 2, :, :-1]
    return context, actions, nxt


def test_training_learns_to_use_the_action():
    keras.utils.set_random_seed(0)
    model = _prior(context_layers=2)
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    context, actions, nxt = _shift_task(1024, seed=0)
    model.fit(
        {"codes": nxt, "context": context, "actions": actions},
        nxt,
        batch_size=32,
        epochs=6,
        verbose=0,
    )
    context, actions, nxt = _shift_task(256, seed=1)
    _, accuracy = model.next_frame_scores(nxt, context, actions)
    copy = (nxt == context[:, -1]).mean()
    shuffled = np.random.default_rng(0).permutation(actions)
    _, accuracy_shuffled = model.next_frame_scores(nxt, context, shuffled)
    assert accuracy.mean() > 0.8 > copy + 0.3
    assert accuracy_shuffled.mean() < accuracy.mean() - 0.3
    rolled = model.rollout(context, np.stack([actions, actions], 1), seed=0)
    assert rolled.shape == (256, 2, H, W)
    np.testing.assert_array_equal(
        rolled, model.rollout(context, np.stack([actions, actions], 1), seed=0)
    )
    assert (rolled[:, 0] == nxt).mean() > 0.65  # drawn at temperature 1


def test_saving_round_trips(tmp_path):
    keras.utils.set_random_seed(3)
    model = _prior()
    inputs = _inputs(2)
    expected = _np(model(inputs))
    path = tmp_path / "prior.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, ActionConditionalPrior)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(_np(loaded(inputs)), expected, atol=1e-5)
    model.save_to_preset(tmp_path / "preset")
    # Alone in the folder, it is bound to no VQ-VAE: said, and loaded.
    with pytest.warns(UserWarning, match="which VQ-VAE weights"):
        again = ActionConditionalPrior.from_preset(
            tmp_path / "preset", allow_missing_checksum=True
        )
    np.testing.assert_allclose(_np(again(inputs)), expected, atol=1e-5)


def test_bad_input_is_refused_with_what_to_do():
    model = _prior()
    inputs = _inputs(2)
    with pytest.raises(DataError, match="last 2 frames; `context` holds 1"):
        model.predict_next(inputs["context"][:, :1], inputs["actions"])
    with pytest.raises(DataError, match=r"integers in \[0, 3\)"):
        model.predict_next(inputs["context"], np.array([0, 3]))
    with pytest.raises(DataError, match=r"\(H, W\) = \(5, 6\)"):
        model.predict_next(np.zeros((2, 2, 4, 6), "int32"), inputs["actions"])
    with pytest.raises(DataError, match="one action per context"):
        model.predict_next(inputs["context"], np.array([0]))
    with pytest.raises(DataError, match=r"codes in \[0, 6\)"):
        model.next_frame_scores(
            inputs["codes"] + K, inputs["context"], inputs["actions"]
        )
    with pytest.raises(ValueError, match="'context'"):
        model(inputs["codes"])
    with pytest.raises(DataError, match=r"\(N, steps\)"):
        model.rollout(inputs["context"], np.array([0, 1]))
