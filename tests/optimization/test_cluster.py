import socket

import pytest

from mdesign.errors import InputError
from mdesign.optimization.cluster import check_dask_address


@pytest.mark.parametrize("address", ["not-a-url", "tcp://", "tcp://host", "http://x:1", "a:b"])
def test_a_malformed_address_is_refused(address):
    with pytest.raises(InputError, match=r"dask.address: expected .*tcp://HOST:PORT"):
        check_dask_address(address)


def test_an_address_is_accepted_exactly_when_a_dask_scheduler_listens_there():
    import asyncio

    from distributed import Scheduler

    async def check() -> str:
        async with Scheduler(host="127.0.0.1", port=0, dashboard_address=None) as sched:
            loop = asyncio.get_running_loop()
            bare = sched.address.removeprefix("tcp://")
            assert await loop.run_in_executor(None, check_dask_address, bare) == bare
            return await loop.run_in_executor(None, check_dask_address, sched.address)

    address = asyncio.run(check())
    port = int(address.rsplit(":", 1)[1])
    # a listener that does not speak Dask (it sends no handshake) is refused, and fast
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        other = server.getsockname()[1]
        with pytest.raises(InputError, match="not a Dask scheduler"):
            check_dask_address(f"tcp://127.0.0.1:{other}", timeout=0.5)
    # the same port once nothing listens: refused, named as the caller names it
    with pytest.raises(InputError, match=r"--scheduler: cannot connect to tcp://127\.0\.0\.1"):
        check_dask_address(f"tcp://127.0.0.1:{port}", name="--scheduler")
