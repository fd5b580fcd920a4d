"""kerasviz.embedding.callback: the projector export during training."""

import numpy as np
import pytest

from kerasviz import embedding


class TestCallback:
    def test_exports_every_k_epochs_and_at_the_end(self, keras, tmp_path):
        import tensorflow as tf

        keras.utils.set_random_seed(0)
        model = keras.Sequential(
            [
                keras.Input((8, 8, 1)),
                keras.layers.Conv2D(3, 3, name="c"),
                keras.layers.GlobalAveragePooling2D(name="gap"),
                keras.layers.Dense(2, activation="softmax"),
            ]
        )
        model.compile("adam", "sparse_categorical_crossentropy")
        x = np.random.default_rng(0).uniform(0, 1, (12, 8, 8, 1)).astype(np.float32)
        y = np.arange(12) % 2
        callback = embedding.ProjectorCallback(tmp_path, x, labels=y, every=2)
        model.fit(x, y, epochs=3, batch_size=4, verbose=0, callbacks=[callback])
        assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_0002", "epoch_0003"]
        ckpt = tf.train.load_checkpoint(str(tmp_path / "epoch_0003"))
        saved = ckpt.get_tensor("embedding/.ATTRIBUTES/VARIABLE_VALUE")
        np.testing.assert_allclose(saved, embedding.features(model, x, layer="gap"), atol=1e-6)
        early = tf.train.load_checkpoint(str(tmp_path / "epoch_0002"))
        assert not np.allclose(early.get_tensor("embedding/.ATTRIBUTES/VARIABLE_VALUE"), saved)
        lines = (tmp_path / "epoch_0003" / "metadata.tsv").read_text().splitlines()
        assert lines == [str(v) for v in y]
        # A second run into the same folder refuses before training, unless asked.
        again = embedding.ProjectorCallback(tmp_path, x, labels=y)
        with pytest.raises(FileExistsError, match="overwrite"):
            model.fit(x, y, epochs=1, verbose=0, callbacks=[again])
        with pytest.raises(ValueError, match="labels"):
            embedding.ProjectorCallback(tmp_path, x, labels=y[:5])
