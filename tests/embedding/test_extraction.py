"""kerasviz.embedding.extraction: feature vectors against hand arithmetic, a light import, and
streaming memory."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from kerasviz import embedding, inspect


def conv_maps(x):
    """The conv layer's output by hand: (N, 4, 4, 2)."""
    return np.concatenate([x, -2.0 * x + 0.5], axis=-1)


class TestExtraction:
    def test_default_layer_is_the_classifier_input(
        self, linear_model, functional_model, sequential_no_input, nested_model
    ):
        # Dropout is the identity at inference: the layer before it is reported.
        assert embedding.FeatureExtractor(linear_model).layer == "flat"
        assert embedding.FeatureExtractor(functional_model).layer == "gap"
        assert inspect.feature_layer(sequential_no_input) == "gap"
        assert inspect.feature_layer(nested_model) == "gap"

    def test_default_features_equal_hand_arithmetic(self, linear_model, x4):
        vectors = embedding.features(linear_model, x4)
        np.testing.assert_allclose(vectors, conv_maps(x4).reshape(7, -1), atol=1e-6)
        assert vectors.dtype == np.float32

    @pytest.mark.parametrize(
        "reduce, reference",
        [
            ("flatten", lambda m: m.reshape(len(m), -1)),
            ("gap", lambda m: m.mean(axis=(1, 2))),
            ("max", lambda m: m.max(axis=(1, 2))),
        ],
    )
    def test_reductions_of_a_spatial_layer(self, linear_model, x4, reduce, reference):
        vectors = embedding.features(linear_model, x4, layer="conv", reduce=reduce)
        np.testing.assert_allclose(vectors, reference(conv_maps(x4)), atol=1e-6)

    def test_batch_size_does_not_change_results(self, functional_model):
        x = np.random.default_rng(1).uniform(0, 1, (7, 16, 16, 3)).astype(np.float32)
        results = [
            embedding.features(functional_model, x, layer="conv2", batch_size=b)
            for b in (1, 3, 7, 64)
        ]
        for r in results[1:]:
            np.testing.assert_allclose(r, results[0], atol=1e-6)
        assert results[0].shape == (7, 8 * 8 * 6)

    def test_a_layer_inside_a_nested_backbone(self, nested_model):
        x = np.random.default_rng(2).uniform(0, 1, (3, 32, 32, 3)).astype(np.float32)
        path = f"{nested_model.layers[1].name}/block_16_project"
        maps = np.asarray(inspect.submodel(nested_model, [path])(x, training=False)[0])
        vectors = embedding.features(nested_model, x, layer=path, reduce="gap")
        np.testing.assert_allclose(vectors, maps.mean(axis=(1, 2)), atol=1e-5)

    def test_single_image_and_uint8(self, linear_model, x4):
        one = embedding.features(linear_model, x4[2])
        assert one.shape == (32,)
        np.testing.assert_allclose(one, conv_maps(x4[2:3]).reshape(-1), atol=1e-6)
        raw = np.arange(7 * 16, dtype=np.uint8).reshape(7, 4, 4, 1)
        np.testing.assert_allclose(
            embedding.features(linear_model, raw),
            conv_maps(raw.astype(np.float32)).reshape(7, -1),
            rtol=1e-6,
        )

    def test_extractor_traces_once(self, linear_model, x4):
        extractor = embedding.FeatureExtractor(linear_model, batch_size=4)
        for n in (1, 3, 7, 5):
            extractor.extract(x4[:n])
        assert extractor._forward.experimental_get_tracing_count() == 1

    def test_datasets_in_every_form(self, linear_model, x4):
        import tensorflow as tf

        expected = conv_maps(x4).reshape(7, -1)
        labels = np.arange(7) % 3
        ids = np.array([f"img{i}" for i in range(7)])
        extractor = embedding.FeatureExtractor(linear_model, batch_size=3)
        # Unbatched images.
        got = extractor.extract(tf.data.Dataset.from_tensor_slices(x4))
        np.testing.assert_allclose(got, expected, atol=1e-6)
        # Batched (images, labels) with batches that do not match ours.
        vectors, got_labels = extractor.extract(
            tf.data.Dataset.from_tensor_slices((x4, labels)).batch(2)
        )
        np.testing.assert_allclose(vectors, expected, atol=1e-6)
        np.testing.assert_array_equal(got_labels, labels)
        # (images, labels, ids): string ids come back as str.
        vectors, got_labels, got_ids = extractor.extract(
            tf.data.Dataset.from_tensor_slices((x4, labels, ids)).batch(4)
        )
        np.testing.assert_allclose(vectors, expected, atol=1e-6)
        np.testing.assert_array_equal(got_ids, ids)
        assert got_ids.dtype.kind == "U"

    def test_progress_on_a_stream_of_unknown_length(self, linear_model, x4, monkeypatch, capsys):
        import tensorflow as tf

        monkeypatch.delenv("KERASVIZ_QUIET", raising=False)
        stream = tf.data.Dataset.from_tensor_slices(x4).batch(2)  # batched: images unknown
        got = embedding.FeatureExtractor(linear_model, batch_size=3).extract(stream, progress=True)
        np.testing.assert_allclose(got, conv_maps(x4).reshape(7, -1), atol=1e-6)
        assert capsys.readouterr().err.splitlines()[-1].startswith("features  7  ")

    def test_bad_inputs(self, keras, linear_model, x4):
        import tensorflow as tf

        class BatchMean(keras.layers.Layer):
            """Averages over the batch: its output has no batch axis."""

            def call(self, x):
                return keras.ops.mean(x, axis=0)

            def compute_output_shape(self, shape):
                return shape[1:]

        inputs = keras.Input((4, 4, 1))
        h = keras.layers.Flatten()(keras.layers.Conv2D(2, 1)(inputs))
        pooled = BatchMean(name="batch_mean")(h)
        model = keras.Model(inputs, keras.layers.Dense(2)(keras.ops.expand_dims(pooled, 0)))
        with pytest.raises(ValueError, match="batch_mean.*without the batch axis"):
            embedding.FeatureExtractor(model, layer="batch_mean")
        with pytest.raises(ValueError, match="reduce"):
            embedding.FeatureExtractor(linear_model, reduce="mean")
        with pytest.raises(KeyError, match="conv"):
            embedding.FeatureExtractor(linear_model, layer="convv")
        with pytest.raises(ValueError, match=r"\(N, 4, 4, 1\).*data.shape=\(200, 5, 5, 1\)"):
            embedding.features(linear_model, np.zeros((200, 5, 5, 1)))
        with pytest.raises(ValueError, match="rank"):
            embedding.features(linear_model, np.zeros((4, 4)))
        with pytest.raises(ValueError, match="infinite"):
            embedding.features(linear_model, tf.data.Dataset.from_tensor_slices(x4).repeat())
        with pytest.raises(ValueError, match="empty"):
            embedding.features(linear_model, tf.data.Dataset.from_tensor_slices(x4).take(0))
        with pytest.raises(TypeError, match="element_spec"):
            embedding.features(linear_model, tf.data.Dataset.from_tensor_slices({"x": x4}))
        with pytest.raises(ValueError, match="no Dense"):
            inspect.feature_layer(
                keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Conv2D(1, 1)])
            )


def test_import_loads_no_keras():
    """The light parts (space, saving, projector) never need Keras; the callback loads it."""
    code = (
        "import sys, kerasviz.embedding as e; "
        "print('keras' in sys.modules, 'tensorflow' in sys.modules); "
        "e.ProjectorCallback; print('keras' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["False", "False", "True"]


_MEMORY_SCRIPT = textwrap.dedent("""
    import os, resource, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import keras, tensorflow as tf
    from kerasviz import embedding
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3),
                              keras.layers.GlobalAveragePooling2D(name="gap"),
                              keras.layers.Dense(2)])
    extractor = embedding.FeatureExtractor(model, batch_size=256)

    def generated(n):
        # Images made on the fly, in batches of 500: the set never exists in memory at once.
        return tf.data.Dataset.range(n).batch(500).map(
            lambda i: tf.random.stateless_uniform((tf.shape(i)[0], 32, 32, 3),
                                                  seed=tf.stack([i[0], 1])))

    for n in (2_000, 20_000):  # the peak is a running maximum: small set first
        vectors = extractor.extract(generated(n))
        assert vectors.shape == (n, 4), vectors.shape
        print(n, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)  # MiB
""")


@pytest.mark.slow
def test_streaming_memory_stays_flat():
    if not sys.platform.startswith("linux"):
        pytest.skip("ru_maxrss is in kB on Linux only")
    run = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    peaks = dict(tuple(map(int, line.split())) for line in run.stdout.strip().splitlines())
    # 18,000 more 32x32x3 float32 images would be 211 MiB if they were held at once.
    assert peaks[20_000] - peaks[2_000] < 60, peaks
