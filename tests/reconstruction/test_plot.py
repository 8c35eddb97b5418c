import numpy as np
from PIL import Image

from mdesign.io import PALETTE
from mdesign.reconstruction.metrics import reconstruction_errors
from mdesign.reconstruction.plot import plot_image


def test_images_are_drawn_at_full_resolution_without_smoothing(tmp_path):
    # one-pixel checkerboards: any downsampling or smoothing would blend the two colours
    side = 200
    board = (np.indices((side, side)).sum(0) % 2).astype(np.uint8)
    errors = reconstruction_errors(board, board, phases=2)
    path = tmp_path / "rec.png"
    plot_image(board, board, errors, path, title="boards")
    png = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    pure = sum(int((png == PALETTE[j]).all(1).sum()) for j in range(2))
    # two panels of at least 2 x 2 figure pixels per image pixel, all in the phase colours
    assert pure >= 2 * (2 * side) ** 2
    assert png.shape[0] >= 2 * (2 * side) ** 2
