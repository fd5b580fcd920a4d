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
    """30 shapes images in one sub-folder per class (labels come from the folder names)."""
    root = tmp_path_factory.mktemp("reference")
    images, labels, _ = datasets.shapes(30, seed=99)
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        imageio.save_png(img, root / datasets.SHAPE_CLASSES[label] / f"{i}.png")
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
    assert "<code>pool3</code>: receptive field 22 x 22 pixels, 30 images searched" in page
    sources = re.findall(r'<img src="([^"]+)"', page)
    assert len(sources) >= 8
    for src in sources:  # every image is a relative path inside the folder
        assert not src.startswith(("/", "http", "file:"))
        assert (built.parent / src).is_file()
    assert (built.parent / "projector" / "projector_config.pbtxt").is_file()
    assert "tensorboard --logdir projector" in page
    meta = json.loads((built.parent / "report.json").read_text())
    assert meta["methods"] == ["occlusion", "gradcam"] and len(meta["images"]) == 3
    # The first layer of shapes_cnn sees RGB: colour tiles, and a slice grid for layer 2.
    assert "conv1" in page and "conv2" in page and "16 filters of 3x3x3" in page


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
    code, err = run("--out", str(tmp_path / "taken"))
    assert code == 2 and "--force" in err and "Traceback" not in err
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
        layers=["conv"],
        **kwargs,
    )
    meta = json.loads((index.parent / "report.json").read_text())
    assert meta["input"] == {"preprocessing": {"mode": "caffe"}, "resize": "pad", "size": [24, 16]}
    assert '<section id="activations">' in index.read_text()
