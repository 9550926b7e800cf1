import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from kdlib import plots  # noqa: E402


def test_log_log_labels_the_error_axis_in_plain_numbers():
    fig, ax = plt.subplots()
    ax.plot([0.1, 1, 10], [0.5, 2, 20])
    assert plots.log_log(ax) is ax
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")
    fig.canvas.draw()
    labels = {t.get_text() for t in ax.get_yticklabels()}
    assert {"1", "10"} <= labels and not any("10^" in t or "$" in t for t in labels)
    assert ax.yaxis.get_minor_formatter()(2) == "2"
    assert any(line.get_visible() for line in ax.get_xgridlines())
    plt.close(fig)


def test_log_log_without_grid():
    fig, ax = plt.subplots()
    ax.plot([1, 10], [1, 10])
    plots.log_log(ax, grid=False)
    fig.canvas.draw()
    assert not any(line.get_visible() for line in ax.get_xgridlines())
    plt.close(fig)
