import pytest
import torch

from mdesign.device import default_device, single_thread


def test_default_device_is_the_given_one_or_what_is_present():
    assert default_device("cpu") == torch.device("cpu")
    assert default_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("start", [1, 2])
def test_single_thread_sets_one_thread_and_restores_even_on_error(start):
    before = torch.get_num_threads()
    torch.set_num_threads(start)
    try:
        with pytest.raises(RuntimeError), single_thread():
            assert torch.get_num_threads() == 1
            raise RuntimeError
        assert torch.get_num_threads() == start
        with single_thread("meta"):  # not the CPU: nothing changes
            assert torch.get_num_threads() == start
    finally:
        torch.set_num_threads(before)
