"""Many scenes on a real dask.distributed LocalCluster (worker processes on loopback) give the same
GeoPackage as the local path."""
import geopandas as gpd
import pytest

from conftest import blob_scene, write_tif
from landslide_wsss import api
from tiny_models import write_tiny_model

distributed = pytest.importorskip("distributed")


@pytest.mark.slow
def test_dask_local_cluster_matches_local_path(tmp_path):
    d = tmp_path / "scenes"
    d.mkdir()
    for k in range(4):
        data, _ = blob_scene(h=160, w=150, boxes=((20, 20, 90, 80), (110, 100, 150, 140)), seed=k)
        write_tif(d / f"tile{k}.tif", data, nodata=0)
    model = tmp_path / "m.safetensors"
    write_tiny_model(model, tile_size=64, threshold=0.45, seed=3)
    local = api.detect_directory(d, tmp_path / "local.gpkg", model=model, min_area_m2=0)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        assert len(cluster.workers) == 2
        dask = api.detect_directory(d, tmp_path / "dask.gpkg", model=model, min_area_m2=0,
                                    scheduler=cluster.scheduler_address)
    a = gpd.read_file(tmp_path / "local.gpkg").sort_values(["scene", "area_m2"]).reset_index(drop=True)
    b = gpd.read_file(tmp_path / "dask.gpkg").sort_values(["scene", "area_m2"]).reset_index(drop=True)
    assert len(a) > 0 and len(a) == len(b) and sorted(set(a.scene)) == [f"tile{k}" for k in range(4)]
    assert a.geom_equals(b).all()
    assert (a.drop(columns="geometry") == b.drop(columns="geometry")).all().all()


def test_local_process_pool_matches_sequential(tmp_path):
    d = tmp_path / "scenes"
    d.mkdir()
    for k in range(2):
        data, _ = blob_scene(h=100, w=100, seed=k)
        write_tif(d / f"s{k}.tif", data, nodata=0)
    model = tmp_path / "m.safetensors"
    write_tiny_model(model, tile_size=64, threshold=0.45, seed=3)
    seq = api.detect_directory(d, tmp_path / "seq.gpkg", model=model, min_area_m2=0, workers=1)
    par = api.detect_directory(d, tmp_path / "par.gpkg", model=model, min_area_m2=0, workers=2)
    assert len(seq) > 0 and len(seq) == len(par) and sorted(set(par.scene)) == ["s0", "s1"]
    assert sorted(seq.area_m2.round(6)) == sorted(par.area_m2.round(6))
