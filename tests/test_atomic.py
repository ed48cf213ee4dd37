"""flowgan.atomic: an output is whole or absent, whatever stops its writer."""

import json

import pytest

from flowgan.atomic import is_temporary, replacing, save_figure, temporary_name, write_json, write_text


def test_a_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "result.json"
    write_json(path, {"nll": 1.5})
    write_json(path, {"nll": 2.5})
    assert json.loads(path.read_text()) == {"nll": 2.5}
    assert path.read_text().endswith("\n")
    assert [p.name for p in path.parent.iterdir()] == ["result.json"]


@pytest.mark.parametrize("stop", [KeyboardInterrupt, OSError, ValueError])
def test_an_interrupted_write_leaves_the_old_file_whole(tmp_path, stop):
    path = write_text(tmp_path / "table.md", "old table\n")
    with pytest.raises(stop):
        with replacing(path) as tmp:
            tmp.write_text("half a ne")
            raise stop()
    assert path.read_text() == "old table\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.md"]


def test_an_interrupted_first_write_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with replacing(tmp_path / "figure.png") as tmp:
            tmp.write_bytes(b"\x89PNG half")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_temporary_names_keep_the_suffix_and_are_recognised(tmp_path):
    tmp = temporary_name(tmp_path / "spectra.npz")
    assert tmp.parent == tmp_path and tmp.suffix == ".npz" and tmp.name.startswith(".spectra.npz.tmp")
    assert is_temporary(tmp.name)
    assert is_temporary(".latest.pt.tmp4242") and is_temporary(".config.json.tmp")  # older flowgan's names
    for name in ("config.json", "latest.pt", ".lock", ".tmp", "a.tmp.json", ".hidden.json"):
        assert not is_temporary(name), name


def test_a_figure_is_written_in_the_format_of_its_suffix_or_not_at_all(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = save_figure(fig, tmp_path / "curve.png", dpi=50)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not plt.fignum_exists(fig.number)  # closed

    fig, ax = plt.subplots()

    def killed(*args, **kwargs):
        open(args[0], "wb").write(b"\x89PNG cut")
        raise KeyboardInterrupt

    fig.savefig = killed
    with pytest.raises(KeyboardInterrupt):
        save_figure(fig, tmp_path / "curve.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and len(path.read_bytes()) > 100  # the old figure
    assert [p.name for p in tmp_path.iterdir()] == ["curve.png"]


@pytest.mark.parametrize("name, fmt", [("grid.png", "PNG"), ("grid.jpg", "JPEG"), ("grid", "PNG")])
def test_a_sample_grid_has_the_format_of_its_suffix(tmp_path, name, fmt):
    import torch
    from PIL import Image

    from flowgan.images import save_grid

    path = save_grid(torch.rand(4, 1, 8, 8), tmp_path / name)
    assert Image.open(path).format == fmt
    assert [p.name for p in tmp_path.iterdir()] == [name]
