"""Every figure function returns a Figure on small inputs; the confusion matrix equals a hand count."""

from __future__ import annotations

import matplotlib.pyplot as plt  # conftest.py selects the Agg backend
import pytest
import torch
from matplotlib.figure import Figure

import tlcourse as tl


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_confusion_matrix_equals_a_hand_count() -> None:
    y_true = torch.tensor([0, 0, 1, 1, 1, 2])
    y_pred = torch.tensor([0, 1, 1, 1, 2, 2])
    expected = torch.tensor([[1, 1, 0],
                             [0, 2, 1],
                             [0, 0, 1]])
    assert torch.equal(tl.confusion_matrix(y_true, y_pred), expected)
    assert torch.equal(tl.confusion_matrix([2], [0], num_classes=3), torch.tensor([[0, 0, 0], [0, 0, 0], [1, 0, 0]]))
    fig = tl.plot_confusion(y_true, y_pred, ["a", "b", "c"])
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert torch.equal(torch.as_tensor(ax.images[0].get_array()), expected)
    assert [t.get_text() for t in ax.texts] == [str(int(v)) for v in expected.flatten()]
    normalized = tl.plot_confusion(y_true, y_pred, ["a", "b", "c"], normalize=True).axes[0].images[0].get_array()
    assert normalized[1, 1] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="length"):
        tl.confusion_matrix([0, 1], [0])


def test_plot_history_from_a_history_and_from_a_dict() -> None:
    h = tl.History(train_loss=[1.0, 0.5, 0.3], train_acc=[0.5, 0.7, 0.8],
                   test_loss=[1.1, 0.7, 0.6], test_acc=[0.4, 0.6, 0.7], seconds=[1.0, 1.0, 1.0])
    fig = h.plot(title="run")
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    loss_ax, acc_ax = fig.axes
    assert [list(line.get_ydata()) for line in loss_ax.lines] == [h.train_loss, h.test_loss]
    assert [list(line.get_ydata()) for line in acc_ax.lines] == [h.train_acc, h.test_acc]
    assert list(loss_ax.lines[0].get_xdata()) == [1, 2, 3]
    partial = tl.plot_history({"train_loss": [1.0, 0.9]})  # whatever is present is drawn
    assert len(partial.axes[0].lines) == 1 and not partial.axes[1].lines


def test_show_filters_draws_one_panel_per_filter() -> None:
    conv = torch.nn.Conv2d(3, 10, 5)
    fig = tl.show_filters(conv, ncols=5)
    assert isinstance(fig, Figure) and len(fig.axes) == 10
    img = fig.axes[0].images[0].get_array()
    assert img.shape == (5, 5, 3) and img.min() == pytest.approx(0) and img.max() == pytest.approx(1)
    grey = tl.show_filters(torch.nn.Conv2d(1, 6, 5).weight)
    assert sum(len(ax.images) for ax in grey.axes) == 6
    with pytest.raises(ValueError, match="weight\\[:, i:i \\+ 1\\]"):
        tl.show_filters(torch.nn.Conv2d(10, 20, 5).weight)


def test_show_images_is_unchanged_and_still_returns_a_figure() -> None:
    assert isinstance(tl.show_images(torch.rand(3, 1, 28, 28), labels=[0, 1, 2]), Figure)
