import socket

import pytest

from mdesign.errors import InputError
from mdesign.optimization.cluster import check_dask_address


@pytest.mark.parametrize("address", ["not-a-url", "tcp://", "tcp://host", "http://x:1", "a:b"])
def test_a_malformed_address_is_refused(address):
    with pytest.raises(InputError, match=r"dask.address: expected .*tcp://HOST:PORT"):
        check_dask_address(address)


def test_an_address_is_accepted_exactly_when_something_listens_there():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert check_dask_address(f"tcp://127.0.0.1:{port}") == f"tcp://127.0.0.1:{port}"
        assert check_dask_address(f"127.0.0.1:{port}") == f"127.0.0.1:{port}"
    # the same port once nothing listens: refused, named as the caller names it
    with pytest.raises(InputError, match=r"--scheduler: cannot connect to tcp://127\.0\.0\.1"):
        check_dask_address(f"tcp://127.0.0.1:{port}", name="--scheduler")
