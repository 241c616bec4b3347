"""How the offline preview scales with the fleet: stacks x models.

Generates synthetic fleets (N region stacks cycling over AWS/GCP/Azure, M models deployed in every
stack, one route per model) in a temporary project that uses this repository's real program, times
``fleetkit preview`` end to end (load + validate + run the Pulumi program under the mock runtime for
every stack, peers resolved), and prints wall time, resources and resources/second per size, plus
the time per (stack x model) so the trend is visible.

    .venv/bin/python benchmarks/preview_scale.py                 # default sizes, demo fleet first
    .venv/bin/python benchmarks/preview_scale.py --sizes 2x2 10x5 50x20

Not run in CI: speed is reported, not asserted.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLOUDS = [
    ("aws", ["us-east-1", "us-west-2", "eu-west-1", "ap-northeast-1"], "p5.48xlarge", {"aws:region": None}),
    (
        "gcp",
        ["europe-west4", "us-central1", "us-east4", "asia-southeast1"],
        "a3-highgpu-8g",
        {"gcp:project": "bench", "gcp:region": None},
    ),
    (
        "azure",
        ["eastus", "westeurope", "southcentralus", "westus3"],
        "Standard_ND96isr_H100_v5",
        {"azure-native:location": None},
    ),
]


def make_fleet(dest: Path, n_stacks: int, n_models: int) -> Path:
    dest.mkdir(parents=True)
    shutil.copy(ROOT / "Pulumi.yaml", dest / "Pulumi.yaml")
    shutil.copy(ROOT / "__main__.py", dest / "__main__.py")
    stacks = dest / "stacks"
    stacks.mkdir()
    shutil.copy(ROOT / "stacks" / "Pulumi.mesh-root.yaml", stacks / "Pulumi.mesh-root.yaml")
    fleet = yaml.safe_load((ROOT / "stacks" / "fleet.yaml").read_text())
    fk = fleet["fleetkit"]
    models = {
        f"model-{i:03d}": {
            "served_name": f"org/model-{i:03d}",
            "weights_uri": f"s3://bench-models/model-{i:03d}",
            "revision": f"rev{i:04d}",
            "params_billion": 8,
            "dtype": "bfloat16",
            "max_model_len": 8192,
            "replicas": {"min": 1, "max": 4},
            "tier": "standard",
        }
        for i in range(n_models)
    }
    fk["models"] = models
    pol = fk["policies"]
    pol["routing"]["routes"] = [
        {"name": f"r-{m}", "match": [{"model": m}], "to": [{"model": m}]} for m in sorted(models)
    ]
    pol["routing"]["default"] = {"to": [{"model": sorted(models)[0]}]}
    pol["load_balancing"] = {"default": {"algorithm": "least_request"}}
    pol["resilience"].pop("models", None)
    pol["resilience"].pop("fallback", None)
    (stacks / "fleet.yaml").write_text(yaml.safe_dump(fleet, sort_keys=False))
    for s in range(n_stacks):
        cloud, regions, itype, provider_cfg = CLOUDS[s % 3]
        region = regions[(s // 3) % len(regions)]
        name = f"{cloud}-{s:03d}"
        config = {k: (v if v is not None else region) for k, v in provider_cfg.items()}
        config.update(
            {
                "fleetkit:cloud": cloud,
                "fleetkit:region": region,
                "fleetkit:cluster": {"name": f"bench-{s:03d}", "create": {"kubernetes_version": "1.33"}},
                "fleetkit:node_pools": {
                    "gpu": {"instance_type": itype, "min_size": 1, "max_size": max(1, n_models)}
                },
                "fleetkit:models": {m: {"pool": "gpu"} for m in models},
                "fleetkit:mesh": {"cluster_name": f"c{s:03d}", "network": f"net{s:03d}"},
            }
        )
        if cloud == "gcp":
            config["fleetkit:account"] = {"gcp_project": "bench"}
        if cloud == "azure":
            config["fleetkit:account"] = {"azure_resource_group": f"bench-{s:03d}"}
        (stacks / f"Pulumi.{name}.yaml").write_text(yaml.safe_dump({"config": config}, sort_keys=False))
    return dest


def time_preview(root: Path) -> tuple[float, int, int, float]:
    from fleetkit.loader import load_fleet
    from fleetkit.preview import preview_fleet

    t0 = time.perf_counter()
    fleet = load_fleet(root)
    t_load = time.perf_counter() - t0
    results = preview_fleet(fleet)
    wall = time.perf_counter() - t0
    resources = sum(sum(1 for r in p.resources if r.custom) for p in results.values())
    return wall, resources, len(results), t_load


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--sizes",
        nargs="*",
        default=["1x2", "4x5", "10x10", "25x20", "50x20"],
        help="STACKSxMODELS sizes to generate (default: %(default)s)",
    )
    ap.add_argument("--no-demo", action="store_true", help="skip timing the bundled demo fleet")
    args = ap.parse_args()

    rows = []
    if not args.no_demo:
        # warm imports once so the first row is not charged for them
        import fleetkit.preview  # noqa: F401

        wall, res, n, t_load = time_preview(ROOT)
        rows.append(("demo fleet", n, "-", wall, res, t_load))
        print(f"demo fleet: {n} stacks, {res} resources, {wall:.2f}s", flush=True)
    for size in args.sizes:
        n_stacks, n_models = (int(x) for x in size.lower().split("x"))
        with tempfile.TemporaryDirectory(prefix="fleetkit-bench-") as tmp:
            root = make_fleet(Path(tmp) / "fleet", n_stacks, n_models)
            wall, res, n, t_load = time_preview(root)
        rows.append((size, n, n_stacks * n_models, wall, res, t_load))
        print(f"{size}: {n} stacks, {res} resources, {wall:.2f}s", flush=True)

    print()
    print(
        f"{'fleet':>10} {'stacks':>6} {'stacks x models':>15} {'wall s':>8} {'load s':>7} {'resources':>9} "
        f"{'res/s':>8} {'ms per stack x model':>20}"
    )
    for name, n, sm, wall, res, t_load in rows:
        per = f"{wall / sm * 1000:.1f}" if isinstance(sm, int) and sm else "-"
        print(
            f"{name:>10} {n:>6} {sm!s:>15} {wall:>8.2f} {t_load:>7.2f} {res:>9} {res / wall:>8.0f} {per:>20}"
        )
    # a quick picture of the trend: wall time per size
    longest = max(r[3] for r in rows) or 1
    print()
    for name, _, _, wall, _, _ in rows:
        bar = "#" * max(1, round(40 * wall / longest))
        print(f"{name:>10} | {bar:<40} {wall:6.1f}s")
    sized = [(sm, wall) for _, _, sm, wall, _, _ in rows if isinstance(sm, int)]
    if len(sized) >= 2:
        (a_sm, a_w), (b_sm, b_w) = sized[-2], sized[-1]
        print(
            f"\nscaling between the two largest sizes: {b_sm / a_sm:.2f}x stacks x models -> {b_w / a_w:.2f}x time"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
