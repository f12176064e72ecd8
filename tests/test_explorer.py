"""The explorer of notebook 08, without a browser: it opens on a sample (the most confident mistake,
else the first), offers only what the run predicted, and its display carries a static picture and a
stable text for renderers without a kernel (GitHub, the rendered site)."""

import base64
import io

import matplotlib

matplotlib.use("Agg")

import nbformat
import pytest
from PIL import Image

from am3f.app import explorer, reproduce
from am3f.data.dataset import load_flow_dataset
from am3f.protocol.engine import QUIET, run_loso
from am3f.protocol.run_folder import load_run

from conftest import EpochRunner

pytest.importorskip("ipywidgets")


@pytest.fixture
def partial(two_dataset_root, tmp_path):
    """A run of 2 of the 5 folds (s01 of smic, sub01 of casme2) and the data it was made on."""
    data = load_flow_dataset(two_dataset_root)
    out = run_loso(data, EpochRunner(), tmp_path / "run", seeds=[0, 1], folds=[0, 2],
                   config={"model": "toy", "variant": "full"}, execution=QUIET)
    return load_run(out), data


def _controls(ui):
    (ds, subj, samp), (wrong, cam) = ui.children[0].children, ui.children[1].children
    return ds, subj, samp, wrong, cam


def test_opens_on_the_first_mistake(partial, capsys):
    run, data = partial
    ui = explorer.explorer(run, data)   # as notebook 08 calls it (displayed; here: its text printed)
    ds, subj, samp, wrong, cam = _controls(ui)
    start = str(explorer.misclassified(run.predictions)["sample_id"].iloc[0])
    row = run.predictions.set_index("sample_id").loc[start].iloc[0]
    assert (samp.value, subj.value, ds.value) == (start, row["subject"], row["dataset"])
    assert "no sample matches" not in capsys.readouterr().out
    assert cam.disabled and not cam.value


def test_default_sample_without_mistakes_is_the_first(partial):
    run, _ = partial
    right = run.predictions.assign(pred=run.predictions["label"])
    assert explorer.misclassified(right).empty
    assert explorer.default_sample(right) == str(right["sample_id"].iloc[0])


def test_offers_only_subjects_with_predictions(partial):
    run, data = partial
    ds, subj, samp, wrong, _ = _controls(explorer.explorer(run, data))
    preds = run.predictions
    assert set(data.subject_ids) - set(preds["subject"]) == {"s02", "sub02", "sub03"}
    assert ds.options == ("casme2", "smic")
    for dataset in ds.options:
        ds.value = dataset
        assert subj.options == tuple(sorted(set(preds.loc[preds.dataset == dataset, "subject"])))
        assert samp.value in samp.options and set(samp.options) == set(
            preds.loc[preds.subject == subj.value, "sample_id"])
    wrong.value = True
    bad = set(preds.loc[preds.label != preds.pred, "sample_id"])
    assert samp.value in bad and set(samp.options) <= bad


def test_explorer_honours_sample_id(partial):
    run, data = partial
    last = str(run.predictions["sample_id"].iloc[-1])
    _, _, samp, _, _ = _controls(explorer.explorer(run, data, sample_id=last, show=False))
    assert samp.value == last
    with pytest.raises(Exception, match="not in this run"):
        explorer.explorer(run, data, sample_id="nobody", show=False)


def test_display_has_a_static_picture_and_stable_text(partial):
    run, data = partial
    bundles = [explorer.explorer(run, data)._repr_mimebundle_() for _ in range(2)]
    b = bundles[0]
    assert "application/vnd.jupyter.widget-view+json" in b       # the live widget, where a kernel runs
    assert "image/png" in b, "no static picture for renderers without a kernel"
    png = Image.open(io.BytesIO(base64.b64decode(b["image/png"])))
    assert png.format == "PNG" and 300 < png.width <= 2000 and png.info.get("dpi", (72,))[0] <= 101
    start = str(explorer.misclassified(run.predictions)["sample_id"].iloc[0])
    assert start in b["text/plain"] and "0x" not in b["text/plain"] and "VBox" not in b["text/plain"]
    assert bundles[1]["text/plain"] == b["text/plain"]          # nbval compares text/plain: no ids in it
    assert bundles[1]["image/png"] == b["image/png"]
    # what `am3f reproduce --in-place` commits: the picture and the text, not the widget view
    out = nbformat.v4.new_output("display_data", data=b)
    cell = nbformat.v4.new_code_cell("ui = explorer.explorer(run, data)", outputs=[out])
    nb = nbformat.v4.new_notebook(cells=[cell])
    reproduce.normalise(nb)
    assert set(nb.cells[0].outputs[0].data) == {"image/png", "text/plain"}


def test_the_screen_says_why_cam_is_off_and_that_the_run_is_partial(partial):
    run, data = partial
    ui = explorer.explorer(run, data, model_for_subject=lambda subject: None, show=False)
    notes = ui.children[2].value
    assert "CAM starts off" in notes and "re-trained" in notes
    assert "Partial run" in notes and "2 subject(s)" in notes
    assert "Partial run" in ui.static_text


def test_the_table_names_classes_and_follows_the_chosen_sample(partial, capsys):
    run, data = partial
    ui = explorer.explorer(run, data, show=False)
    _, _, samp, _, _ = _controls(ui)
    other = [s for s in samp.options if s != samp.value][0]
    capsys.readouterr()
    samp.value = other   # outside a kernel the explorer's output area prints: the figure, then the table
    table = explorer.sample_table(run, data, other)
    assert capsys.readouterr().out.rstrip().endswith(repr(table))
    assert set(table.df["true"]) <= set(data.class_names) and set(table.df["pred"]) <= set(data.class_names)


def test_cam_panels_get_a_row_of_their_own(partial):
    from am3f.models.registry import build_model
    from am3f.training.recipe import resolve_variant

    run, data = partial
    model = build_model(resolve_variant("full")[0], image_size=data.image_size[0]).eval()
    sample = str(run.predictions["sample_id"].iloc[0])
    with_cams = explorer.explorer_view(run, data, sample, model=model)
    without = explorer.explorer_view(run, data, sample)
    # the CAMs below the sample at the same panel size (not seven thumbnails squeezed into one row)
    assert with_cams.get_size_inches()[0] == without.get_size_inches()[0]
    assert with_cams.get_size_inches()[1] == 2 * without.get_size_inches()[1]
    titles = [ax.get_title() for ax in with_cams.axes]
    assert [t for t in titles if t.startswith("LayerCAM")] == [f"LayerCAM, {b} branch" for b in ("u", "v", "strain")]
