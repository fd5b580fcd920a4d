"""The HTML report: sections, self-containment, refusal to overwrite, and a real browser."""

import html
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from kerasviz import datasets, imageio, report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--mute-audio",
]


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory):
    """30 shapes images in one sub-folder per class (labels come from the folder names), and
    one of the report's inputs, which must not be listed as its own neighbour."""
    root = tmp_path_factory.mktemp("reference")
    images, labels, _ = datasets.shapes(30, seed=99)
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        imageio.save_png(img, root / datasets.SHAPE_CLASSES[label] / f"{i}.png")
    shutil.copy("saved_models/samples/shapes/square.png", root / "square" / "input.png")
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory, reference_dir):
    out = tmp_path_factory.mktemp("reports") / "shapes-report"
    index = report.build_report(
        "shapes_cnn",
        out=out,
        methods=("occlusion", "gradcam"),
        reference=reference_dir,
        progress=False,
    )
    return index


def test_sections_and_files(built):
    page = built.read_text()
    sections = ("summary", "predictions", "filters", "activations", "explanations", "features")
    for section in (*sections, "units"):
        assert f'<section id="{section}">' in page
    # ZF's top patches of the deepest layer whose field is at most half the 64 px input.
    assert "<code>pool3</code>: receptive field 22 x 22 pixels, 31 images searched" in page
    sources = re.findall(r'<img src="([^"]+)"', page)
    # inputs, 2 filter figures, 4 stages, explanations, neighbours, map, units
    assert len(sources) == 11
    for src in sources:  # every image is a relative path inside the folder
        assert not src.startswith(("/", "http", "file:"))
        assert (built.parent / src).is_file()
    assert (built.parent / "projector" / "projector_config.pbtxt").is_file()
    assert "tensorboard --logdir projector" in page
    meta = json.loads((built.parent / "report.json").read_text())
    assert meta["methods"] == ["occlusion", "gradcam"] and len(meta["images"]) == 3
    assert meta["images_drawn"] == 11 and meta["warnings"] == []
    # The first layer of shapes_cnn sees RGB: colour tiles, and a slice grid for layer 2.
    assert "conv1" in page and "conv2" in page and "16 filters of 3x3x3" in page


def test_model_table_layers_and_feature_notes(built):
    page = built.read_text()
    # The facts table has row headers and no empty header row; card values read as text.
    assert "<th></th>" not in page
    assert '<tr><th scope="row">layers</th><td>17</td></tr>' in page
    assert re.search(r"<tr><th scope=\"row\">accuracy</th><td>[^<{]*: 0\.\d+</td>", page)
    # The layer table is folded, with every layer in it.
    folded = re.search(r"<details><summary>All 17 layers.*?</details>", page, re.S)
    assert folded and folded.group(0).count("<tr>") == 18  # header + 17 layers
    # One representative layer per resolution stage, 8 strongest channels each.
    for layer, size in (("relu1", 64), ("relu2", 32), ("relu3", 16), ("relu4", 8)):
        assert f"<code>{layer}</code>: {size} x {size}, strongest 8 of" in page
    assert "<code>conv1</code>: 64" not in page
    # The map says how many references it shows; t-SNE is written as such; the inputs are on
    # it; the input that is in the reference set is not its own neighbour.
    assert (
        "The map shows all 31 reference images, t-SNE-embedded together with the 3 inputs" in page
    )
    assert "TSNE" not in page
    assert "1 input is also in the reference set; it is not listed as its own neighbour." in page


def test_predictions_match_model(built, shipped):
    images, files = imageio.load_images("saved_models/samples/shapes", (64, 64, 3))
    probs = shipped("shapes_cnn").predict(images, verbose=0)
    page = built.read_text()
    for f, p in zip(files, probs, strict=True):
        top = datasets.SHAPE_CLASSES[int(np.argmax(p))]
        assert f"<td>{f.stem}</td><td>{top}: {p.max():.3f}</td>" in page


def test_refuses_to_overwrite_and_unknown_input(built, tmp_path):
    with pytest.raises(FileExistsError, match="--force"):
        report.build_report("shapes_cnn", out=built.parent, progress=False)
    with pytest.raises(KeyError, match="Unknown method"):
        report.build_report("shapes_cnn", out=tmp_path / "r", methods=("occlusio",))
    with pytest.raises(KeyError, match="No layer"):
        report.build_report("shapes_cnn", out=tmp_path / "r", layers=["conv9"], methods=())
    assert not (tmp_path / "r").exists()  # nothing written before the inputs were checked


def _chromium(*args, timeout=120):
    return subprocess.run(
        [CHROMIUM, *CHROME_FLAGS, *args], capture_output=True, text=True, timeout=timeout
    )


_CHECKER = """<script>
window.__kv = [];
window.addEventListener('error', function (e) {
  var t = e.target || {};
  window.__kv.push('error: ' + (e.message || t.src || t.href || 'resource'));
}, true);
var __ce = console.error;
console.error = function () {
  window.__kv.push('console: ' + Array.prototype.join.call(arguments, ' '));
  __ce.apply(console, arguments);
};
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var out = document.createElement('pre');
  out.id = 'kv-check';
  out.textContent = JSON.stringify({
    images: imgs.length,
    broken: imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); })
                .map(function (i) { return i.getAttribute('src'); }),
    errors: window.__kv,
    sections: Array.prototype.map.call(document.querySelectorAll('section'),
                                       function (s) { return s.id; })
  });
  document.body.appendChild(out);
});
</script>"""


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI"),
    reason="Chromium is not installed (Debian: apt-get install chromium); "
    ".ci/run installs it, so CI always runs this test",
)
def test_report_in_headless_chromium(built, tmp_path):
    assert CHROMIUM is not None, "CI must have Chromium: .ci/run installs it"
    folder = tmp_path / "copy"
    shutil.copytree(built.parent, folder)  # the folder works when moved elsewhere
    page = (folder / "index.html").read_text()
    (folder / "check.html").write_text(page.replace("<head>", "<head>" + _CHECKER, 1))
    dom = _chromium(
        "--virtual-time-budget=15000", "--dump-dom", (folder / "check.html").as_uri()
    ).stdout
    found = re.search(r'<pre id="kv-check">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    result = json.loads(html.unescape(found.group(1)))
    assert result["images"] >= 8
    assert result["broken"] == []
    assert result["errors"] == []
    assert result["sections"] == [
        "summary",
        "predictions",
        "filters",
        "activations",
        "explanations",
        "features",
        "units",
    ]
    shot = tmp_path / "shot.png"
    _chromium("--window-size=1200,1600", f"--screenshot={shot}", (folder / "index.html").as_uri())
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert pixels.shape == (1600, 1200)
    assert (pixels < 200).mean() > 0.05 and pixels.std() > 20  # text and figures, not blank


def test_cli_report_refuses_and_bad_input(tmp_path, capsys):
    from kerasviz.cli import main

    def run(*args):
        code = main(["report", *args])
        return code, capsys.readouterr().err

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "index.html").write_text("an old report")
    code, err = run("--out", str(tmp_path / "taken"))
    assert code == 2 and "--force" in err and "Traceback" not in err
    (tmp_path / "taken" / "precious.txt").write_text("mine")  # refused before any work
    code, err = run("--out", str(tmp_path / "taken"), "--force")
    assert code == 2 and "did not write (precious.txt)" in err
    assert (tmp_path / "taken" / "precious.txt").read_text() == "mine"
    code, err = run("--out", str(tmp_path / "r"), "--images", str(tmp_path / "missing.png"))
    assert code == 2 and "no such file" in err
    code, err = run("--out", str(tmp_path / "r"), "--methods", "occlusion,magic")
    assert code == 2 and "Unknown method 'magic'" in err
    assert len(err.strip().splitlines()) == 1


def test_report_of_a_model_object(tmp_path, shipped, capsys, monkeypatch):
    """A keras.Model in memory (no card): the report names it and uses the images given."""
    monkeypatch.delenv("KERASVIZ_QUIET", raising=False)
    model = shipped("shapes_cnn")
    index = report.build_report(
        model,
        images="saved_models/samples/shapes",
        out=tmp_path / "r",
        methods=("gradcam",),
        layers=["conv1"],
    )
    page = index.read_text()
    assert f"<title>kerasviz report: {html.escape(model.name)}</title>" in page
    assert '<section id="explanations">' in page
    meta = json.loads((index.parent / "report.json").read_text())
    assert meta["model"] == model.name and len(meta["images"]) == 3
    progress = capsys.readouterr()
    assert "[kerasviz report] filters" in progress.err and progress.out == ""
    # stderr is not a terminal here: plain lines, no carriage returns or ANSI codes (Keras'
    # own progress bars included).
    assert "\x1b" not in progress.err and "\r" not in progress.err
    assert "gradcam  3/3 [" in progress.err  # long steps show their progress
    with pytest.raises(TypeError, match="keras.Model"):
        report.build_report(object(), images="saved_models/samples/shapes", out=tmp_path / "r2")
    with pytest.raises(ValueError, match="no shipped samples"):
        report.build_report(model, out=tmp_path / "r3", progress=False)


def test_any_size_model_with_caffe_inputs(tmp_path):
    """An Input((None, None, 3)) model: images read at `size` (else a clear error), padded,
    caffe-preprocessed, and drawn as RGB again."""
    import keras

    from kerasviz._preprocess import Preprocessing

    keras.utils.set_random_seed(5)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(3, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(x), name="open")
    kwargs = {"images": "saved_models/samples/shapes", "methods": (), "progress": False}
    with pytest.raises(ValueError, match="size="):
        report.build_report(model, out=tmp_path / "r0", **kwargs)
    index = report.build_report(
        model,
        out=tmp_path / "r",
        preprocessing=Preprocessing("caffe"),
        resize="pad",
        size=(24, 16),
        **kwargs,
    )
    meta = json.loads((index.parent / "report.json").read_text())
    assert meta["input"] == {"preprocessing": {"mode": "caffe"}, "resize": "pad", "size": [24, 16]}
    # The representative layer of an open-size model, its size measured on the images.
    assert "<h3><code>conv</code>: 22 x 14, strongest 3 of 3 channels</h3>" in index.read_text()


def _rows(*layers):
    """Layer-table rows ``(path, type, side)``; side None: not spatial."""
    from types import SimpleNamespace

    return [
        SimpleNamespace(
            path=path,
            type=kind,
            output_shape=(None, side, side, 8) if side else (None, 8),
            activations=bool(side),
        )
        for path, kind, side in layers
    ]


def test_representative_layers(shipped):
    from kerasviz import inspect

    # Valid padding shrinks the maps a little at every conv: stages are cut by pooling.
    assert report.representative_layers(inspect.layer_table(shipped("digits_cnn"))) == [
        "conv2",
        "conv4",
    ]
    rows = _rows(
        ("input", "InputLayer", 32),
        ("conv1", "Conv2D", 32),
        ("bn1", "BatchNormalization", 32),
        ("relu1", "ReLU", 32),
        ("pad", "ZeroPadding2D", 33),
        ("conv2", "Conv2D", 16),  # stride 2: a new stage
        ("add", "Add", 16),
        ("pool", "MaxPooling2D", 8),  # a stage of pooling only: nothing to show
        ("conv3", "Conv2D", 1),  # a 1 x 1 map: not spatial
        ("gap", "GlobalAveragePooling2D", None),
    )
    assert report.representative_layers(rows) == ["relu1", "add"]
    deep = _rows(*[(f"c{i}", "Conv2D", 2 ** (12 - i)) for i in range(10)])
    assert report.representative_layers(deep, limit=4) == ["c0", "c3", "c6", "c9"]
    # An any-size model: sizes measured on an image stand in for the open table shapes.
    open_rows = _rows(("a", "Conv2D", None), ("b", "Conv2D", None))
    for row in open_rows:
        row.output_shape, row.activations = (None, None, None, 8), True
    assert report.representative_layers(open_rows, sizes={"a": (20, 20), "b": (10, 10)}) == [
        "a",
        "b",
    ]


def test_flat_outputs_and_noise_maps():
    probs = np.array([[1 / 3, 1 / 3, 1 / 3], [0.36, 0.33, 0.31], [0.9, 0.05, 0.05]])
    flat = report.flat_outputs(probs, probabilities=True)
    assert flat[0] == "outputs nearly flat: top probability 0.333 against 1/K = 0.333 (3 classes)"
    assert flat[1:] == [None, None]
    logits = np.array([[2.0, 2.0 + 1e-9], [2.0, 0.0]])
    assert report.flat_outputs(logits, probabilities=False)[1] is None
    assert "span only 1e-09" in report.flat_outputs(logits, probabilities=False)[0]
    assert report.flat_outputs(np.zeros((2, 1)), probabilities=False) == [None, None]
    assert "not finite" in report.flat_outputs(np.array([[np.nan, 1.0]]), False)[0]
    # Independent sigmoid labels compare as logits: all "absent" alike is flat, one present not.
    sigmoid = np.array([[0.02, 0.02, 0.0205], [0.9, 0.02, 0.02]])
    assert [r is None for r in report._flat_for_head(sigmoid, "sigmoid")] == [False, True]
    assert report._flat_for_head(sigmoid, None)[0].endswith("span only 0.0005")

    rng = np.random.default_rng(0)
    maps = rng.normal(size=(5, 8, 8))
    maps[1] *= 1e-12  # noise against scores of size 3
    maps[2] = 7.0 + 1e-9 * maps[2]  # a constant plus rounding
    maps[3] = 0.0
    maps[4, 0, 0] = np.inf
    reasons = report.noise_maps(maps, [3.0, 3.0, 1e-3, 3.0, 3.0])
    assert reasons[0] is None
    assert reasons[1].startswith("map range ") and "float noise (scores of size 3)" in reasons[1]
    assert "float noise around 7" in reasons[2]
    assert reasons[3] == "map is constant (0)"
    assert reasons[4] == "map has NaN or infinite values"
    # A small map is not noise when the scores it explains are small too.
    assert report.noise_maps(maps[:1] * 1e-6, [1e-3]) == [None]


def test_neighbours_skip_the_input_itself():
    rng = np.random.default_rng(0)
    refs = rng.uniform(0, 1, (5, 4, 4))
    queries = np.stack([refs[2] + 0.4 / 255, rng.uniform(0, 1, (4, 4))])  # query 0 is ref 2
    idx = np.array([[2, 0, 1, 3], [4, 2, 0, 1]])
    dist = np.arange(8, dtype=np.float32).reshape(2, 4)
    kept, kept_dist, skipped = report._without_self(refs[idx], queries, idx, dist, k=3)
    assert kept.tolist() == [[0, 1, 3], [4, 2, 0]] and skipped == 1
    assert kept_dist.tolist() == [[1, 2, 3], [4, 5, 6]]


def test_card_values_read_as_text():
    assert report._fact({"test": 0.97222, "train": 1.0}) == "test: 0.9722; train: 1"
    assert report._fact([0.0, 1.0]) == "0 to 1" and report._fact((32, 32, 1)) == "32, 32, 1"


def test_untrained_head_is_greyed_and_warned(tmp_path, capsys):
    """Every class 1/3 and maps of ~1e-12: the report says so instead of drawing heat maps."""
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    head = keras.layers.Dense(3, activation="softmax", name="head")
    model = keras.Model(inputs, head(x), name="untrained")
    head.set_weights([w * 1e-12 for w in head.get_weights()])  # an untrained head, near zero
    index = report.build_report(
        model,
        images="saved_models/samples/shapes",
        out=tmp_path / "r",
        methods=("occlusion", "saliency"),
        progress=False,
    )
    err = capsys.readouterr().err
    page = index.read_text()
    meta = json.loads((index.parent / "report.json").read_text())
    flat = "outputs nearly flat: top probability 0.333 against 1/K = 0.333 (3 classes)"
    assert err.count(f"warning: circle: {flat}") == 1 and err.count("warning:") == 3
    assert '<div class="warn"><strong>Read with care:</strong>' in page
    assert page.count(f"{flat}; every map of it is drawn grey") == 3
    assert f"<td>{flat}</td>" in page  # the predictions table says it too
    assert len(meta["warnings"]) == 3


def _mobilenet_v2(size: int, classes: int = 3):
    """MobileNetV2 (alpha 0.35, random weights) with BatchNorm statistics set from a few images,
    so its maps are not the blown-up or vanished ones of default statistics."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(
        alpha=0.35, input_shape=(size, size, 3), weights=None, classes=classes
    )
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.momentum = 0.0  # one training pass sets the moving statistics to the batch's
    images, _, _ = datasets.shapes(4, size=size, seed=5)
    model(images * 2 - 1, training=True)
    for layer in norms:
        layer.momentum = 0.99
    return model


@pytest.mark.slow
def test_backbone_report_is_bounded_and_renders(tmp_path):
    """A 155-layer MobileNetV2: folded table, one layer per stage, legible tiles, few images,
    and the page works in a real browser."""
    from PIL import Image

    from kerasviz._preprocess import Preprocessing

    model = _mobilenet_v2(32)
    index = report.build_report(
        model,
        images="saved_models/samples/shapes",
        out=tmp_path / "r",
        methods=("gradcam",),
        preprocessing=Preprocessing("tf"),
        progress=False,
    )
    page = index.read_text()
    folded = re.search(r"<details><summary>All (\d+) layers.*?</details>", page, re.S)
    assert folded and int(folded.group(1)) > 150
    assert folded.group(0).count("<tr>") == int(folded.group(1)) + 1
    stages = re.findall(r"<h3><code>([^<]+)</code>: (\d+) x \d+, strongest 8 of \d+", page)
    sides = [int(side) for _, side in stages]
    assert 3 <= len(stages) <= report.MAX_LAYERS and sides == sorted(sides, reverse=True)
    assert len(set(sides)) == len(sides)  # one per resolution stage
    pngs = sorted((index.parent / "img").glob("*.png"))
    assert len(pngs) == 4 + len(stages) <= report.MAX_FIGURES  # inputs, 2 filters, grid
    for path in pngs:
        if path.name.startswith("act_"):
            with Image.open(path) as png:  # 8 tiles of at least 48 px, 3 rows
                assert png.size[0] >= 8 * 48 and png.size[1] >= 3 * 48
    if CHROMIUM is None:
        return
    (index.parent / "check.html").write_text(page.replace("<head>", "<head>" + _CHECKER, 1))
    dom = _chromium(
        "--virtual-time-budget=15000", "--dump-dom", (index.parent / "check.html").as_uri()
    ).stdout
    found = re.search(r'<pre id="kv-check">(.*?)</pre>', dom, re.S)
    assert found, dom[-2000:]
    result = json.loads(html.unescape(found.group(1)))
    assert result["images"] == len(pngs) and result["broken"] == [] and result["errors"] == []
    shot = tmp_path / "backbone.png"
    _chromium("--window-size=1200,1600", f"--screenshot={shot}", index.as_uri())
    with Image.open(shot) as png:
        pixels = np.asarray(png.convert("L"), dtype=np.float32)
    assert (pixels < 200).mean() > 0.05 and pixels.std() > 20  # text and figures, not blank
