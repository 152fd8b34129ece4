import pytest

from tests.unit.prober.servers import HealthServer, port_is_free


@pytest.fixture
async def server():
    srv = await HealthServer().start()
    yield srv
    await srv.close()
    assert port_is_free(srv.port), "test HTTP server still listening"
