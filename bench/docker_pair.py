"""Nothing to a streaming Docker pair: the harness as it runs (the primary unpacks the
image's initdb template, containers start side by side) against the same harness with the
image's own initdb in the primary's entrypoint, alternating rounds in one run. Prints
min / median / max and the ratio of medians, writes JSON.

    python bench/docker_pair.py --rounds 7 --json bench/results/docker_pair.json
"""

from __future__ import annotations

import argparse
import platform
import time
from unittest import mock

from _report import report  # bench/ is the script's own directory

from pytest_pgstandby import Settings, start_cluster
from pytest_pgstandby.backends import docker as docker_backend


def pair(settings: Settings, template: bool) -> float:
    started = time.perf_counter()
    if template:
        with start_cluster(settings) as cluster:
            assert "unpacking the initdb template" in cluster.primary.setup_output()
            return time.perf_counter() - started
    # the same label lookup, told the image has no template: the entrypoint runs initdb
    untemplated = mock.patch.object(docker_backend, "TEMPLATE_LABEL", "org.pgstandby.none")
    with untemplated, start_cluster(settings) as cluster:
        assert "unpacking the initdb template" not in cluster.primary.setup_output()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--image", default="pgstandby/postgres:15")
    parser.add_argument("--json", default="bench/results/docker_pair.json")
    args = parser.parse_args()
    settings = Settings(backend="docker", image=args.image)
    times: dict[str, list[float]] = {"template": [], "image initdb": []}
    for _ in range(args.rounds):
        times["template"].append(pair(settings, template=True))
        times["image initdb"].append(pair(settings, template=False))
    report(
        times,
        ("template", "image initdb"),
        args.json,
        f"vm: {platform.machine()}, rounds={args.rounds}, image {args.image}",
    )


if __name__ == "__main__":
    main()
