import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    """These models are tiny: one intra-op thread is faster than two on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
