"""The `landslide-wsss` command: argument parsing only; the work is in api.py and friends.

Exit codes: 0 success (an all-clear scene gives an empty layer), 2 bad input or usage (one
`error:` line on stderr, nothing written), 130 interrupted, 1 an unexpected failure.
"""
from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
import warnings
from typing import List, Optional

from . import __version__
from .cliutil import Parser as _Parser, emit as _emit
from .runtime import RUNTIMES
from .params import DEFAULT_BATCH, DEFAULT_LAYER, DEFAULT_MIN_AREA_M2, DEFAULT_SIMPLIFY_PX, DEFAULT_TILE_M, GRID_LAYER




def _int_list(text: str) -> List[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated band numbers, got {text!r}") from None




class _Reporter:
    """Progress as a tqdm bar on stderr, as JSON lines on stdout (--jsonl), or nothing (--quiet)."""

    def __init__(self, args, desc: str):
        self.jsonl = getattr(args, "jsonl", False)
        self.show_bar = not self.jsonl and not getattr(args, "quiet", False)
        self.desc = desc
        self.bar = None
        self.last = -1.0

    def __call__(self, fraction: float) -> None:
        pct = round(100.0 * min(max(fraction, 0.0), 1.0), 1)
        if self.show_bar and self.bar is None:  # created on first progress: errors before work show no bar
            from tqdm import tqdm

            self.bar = tqdm(total=100, desc=self.desc, unit="%", bar_format="{l_bar}{bar}| {n:.0f}% [{elapsed}<{remaining}]")
        if self.jsonl and pct != self.last:
            _emit({"event": "progress", "percent": pct})
        if self.bar is not None:
            self.bar.n = pct
            self.bar.refresh()
        self.last = pct

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


RADIOMETRY_HELP = ("how band values are mapped onto the model's training values, once per scene: auto "
                   "(uint8 as is, other integers by their bit depth, floats <= 1.5 as reflectance), stretch "
                   "(per-band p1..p99 onto the model's), none (as read); default auto")


def _add_radiometry(p) -> None:
    p.add_argument("--radiometry", default="auto", choices=("auto", "stretch", "none"), help=RADIOMETRY_HELP)


def _add_detect(sub) -> None:
    p = sub.add_parser("detect", help="detect landslides in a GeoTIFF scene or a directory of scenes")
    p.add_argument("input", help="a GeoTIFF scene or a directory of them")
    p.add_argument("-o", "--output", required=True, help="output GeoPackage (.gpkg)")
    p.add_argument("--model", help="model file (.safetensors); default: the embedded model")
    p.add_argument("--method", help="method name (default: the model's best method)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto)")
    p.add_argument("--runtime", default="auto", choices=RUNTIMES,
                   help="engine of the network forward: onnxruntime or torch (default auto: onnxruntime where the method allows)")
    p.add_argument("--tile", type=int, help="tile size in px (default: the model's)")
    p.add_argument("--overlap", type=int, help="tile overlap in px (default: tile/8)")
    p.add_argument("--bands", type=_int_list, help="1-based bands to use, e.g. 1,2,3 (default: all)")
    p.add_argument("--dsm", help="co-registered elevation raster (DSM/DEM); used by terrain-aware methods")
    p.add_argument("--threshold", type=float, help="override the model's threshold (0..1): the CAM threshold, or the student's mask threshold (its hysteresis gate stays)")
    p.add_argument("--min-area", type=float, default=DEFAULT_MIN_AREA_M2, help="minimum polygon area in m² (default %(default)g)")
    p.add_argument("--simplify", type=float, default=DEFAULT_SIMPLIFY_PX, help="simplification tolerance in px (default %(default)g)")
    p.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help="tiles per model batch (default %(default)d)")
    p.add_argument("--assume-crs", help="CRS for rasters that have none, e.g. EPSG:32647")
    p.add_argument("--target-crs", help="reproject the polygons into this CRS, e.g. EPSG:4326 (a directory: every scene's)")
    _add_radiometry(p)
    p.add_argument("--workers", type=int, help="directory input: local worker processes (default: one per core)")
    p.add_argument("--scheduler", help="directory input: Dask scheduler address, e.g. tcp://127.0.0.1:8786")
    p.add_argument("--score-raster", help="also write the fused score as a GeoTIFF (single scene)")
    p.add_argument("--preview", help="also write a PNG preview (single scene)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--jsonl", action="store_true", help="machine-readable JSON-lines events on stdout")
    p.set_defaults(func=_cmd_detect)


class _LogToEvents:
    """Route the package's log records to JSON-lines messages or to stderr."""

    def __init__(self, args):
        import logging

        self.args = args
        handler = logging.Handler()
        handler.emit = self.emit
        logger = logging.getLogger("landslide_wsss")
        logger.handlers[:] = [handler]
        logger.setLevel(logging.WARNING if getattr(args, "quiet", False) else logging.INFO)
        logger.propagate = False

    def emit(self, record) -> None:
        text = record.getMessage()
        if getattr(self.args, "jsonl", False):
            _emit({"event": "message", "level": record.levelname.lower(), "text": text})
        else:
            sys.stderr.write(f"{record.levelname.lower()}: {text}\n")


def _cmd_detect(args) -> int:
    from pathlib import Path

    _LogToEvents(args)

    from . import api
    from .errors import InputWarning

    common = dict(
        method=args.method, tile=args.tile, overlap=args.overlap, bands=args.bands, dsm=args.dsm,
        min_area_m2=args.min_area, simplify_px=args.simplify, batch_size=args.batch_size,
        assume_crs=args.assume_crs, threshold=args.threshold, runtime=args.runtime, radiometry=args.radiometry,
    )
    report = _Reporter(args, "detect")
    try:
        if Path(args.input).is_dir():
            if args.score_raster or args.preview:
                from .errors import InputError

                raise InputError("--score-raster and --preview take a single scene, not a directory")
            gdf = api.detect_directory(
                args.input, args.output, model=args.model, device=args.device, workers=args.workers,
                scheduler=args.scheduler, target_crs=args.target_crs, overwrite=args.overwrite,
                progress=report, **common,
            )
        else:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", api.NothingToDetect)
                gdf = api.detect(
                    args.input, args.output, model=args.model, device=args.device,
                    overwrite=args.overwrite, score_raster=args.score_raster, preview=args.preview,
                    target_crs=args.target_crs, progress=report, **common,
                )
            for w in caught:
                if issubclass(w.category, (api.NothingToDetect, InputWarning)):
                    _warn(args, str(w.message))
    finally:
        report.close()
    crs = gdf.crs.to_string() if gdf.crs is not None else None
    if args.jsonl:
        _emit({"event": "result", "output": str(Path(args.output).resolve()), "features": int(len(gdf)),
               "crs": crs, "layer": DEFAULT_LAYER})
    elif not args.quiet:
        print(f"{args.output}: {len(gdf)} landslide polygon(s), CRS {crs}")
    return 0


def _warn(args, text: str) -> None:
    if getattr(args, "jsonl", False):
        _emit({"event": "message", "level": "warning", "text": text})
    else:
        sys.stderr.write(f"warning: {text}\n")


def _add_preview(sub) -> None:
    p = sub.add_parser("preview", help="PNG of a scene with polygons, stitched CAM and CycleGAN difference")
    p.add_argument("input", help="a GeoTIFF scene")
    p.add_argument("-o", "--output", required=True, help="output PNG")
    for name, kw in [("--model", {}), ("--method", {}), ("--device", {"default": "auto"}),
                     ("--runtime", {"default": "auto", "choices": RUNTIMES}),
                     ("--tile", {"type": int}), ("--overlap", {"type": int}), ("--bands", {"type": _int_list}),
                     ("--dsm", {}), ("--threshold", {"type": float}), ("--assume-crs", {}),
                     ("--min-area", {"type": float, "default": DEFAULT_MIN_AREA_M2})]:
        p.add_argument(name, **kw)
    _add_radiometry(p)
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_preview)


def _cmd_preview(args) -> int:
    from . import api

    _LogToEvents(args)
    report = _Reporter(args, "preview")
    try:
        gdf = api.preview(args.input, args.output, model=args.model, device=args.device, overwrite=args.overwrite,
                          method=args.method, threshold=args.threshold, runtime=args.runtime,
                          tile=args.tile, overlap=args.overlap, bands=args.bands, dsm=args.dsm,
                          assume_crs=args.assume_crs, min_area_m2=args.min_area, radiometry=args.radiometry,
                          progress=report)
    finally:
        report.close()
    if not args.quiet:
        print(f"{args.output}: {len(gdf)} polygon(s) drawn")
    return 0


def _add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="measure landslide IoU/F1 on labelled data")
    esub = p.add_subparsers(dest="kind", required=True, parser_class=_Parser)
    b = esub.add_parser("bijie", help="a Bijie-style folder (images/, masks/) and a split list")
    b.add_argument("data_dir")
    b.add_argument("--split", required=True, help="list of image names (e.g. val.txt)")
    b.add_argument("--limit", type=int, help="only the first N names (quick checks)")
    b.add_argument("--gallery", help="folder for per-image overlays (image | reference | prediction), first 48 images")
    b.add_argument("--pr-plot", help="PNG of precision / recall / IoU against the score threshold")
    b.add_argument("--gsd", type=float, help="ground sampling distance of the images in metres (default: the Bijie crops')")
    b.add_argument("--jpeg-quality", type=int, help="measure each image after a JPEG round trip at this quality "
                   "(1-95; 95: as the Bijie training images are stored)")
    s = esub.add_parser("scene", help="a georeferenced scene with a pixel mask (255 = ignore)")
    s.add_argument("--image", required=True)
    s.add_argument("--dsm")
    s.add_argument("--mask", required=True, help="reference mask (1 landslide, 0 background, 255 ignored) on the "
                   "image's grid, or one that can be aligned with it (CRS, overlap)")
    s.add_argument("--bands", type=_int_list, help="1-based bands of the image, e.g. 1,2,3 (default: all, or red, "
                   "green, blue by the file's colour interpretation)")
    _add_radiometry(s)
    for q in (b, s):
        q.add_argument("--method", help="method name (default: the best weak method)")
        q.add_argument("--model", help="model file (default: the embedded model)")
        q.add_argument("--device", default="auto")
        q.add_argument("--runtime", default="auto", choices=RUNTIMES, help="onnxruntime or torch (default auto)")
        q.add_argument("--json", action="store_true", help="print one JSON object")
        q.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args) -> int:
    from . import evaluation

    _LogToEvents(args)

    if args.kind == "bijie":
        res = evaluation.evaluate_bijie(args.data_dir, args.split, method=args.method, model_path=args.model,
                                        device=args.device, limit=args.limit, gallery=args.gallery,
                                        pr_plot=args.pr_plot, runtime=args.runtime, jpeg_quality=args.jpeg_quality,
                                        **({} if args.gsd is None else {"gsd": args.gsd}))
    else:
        res = evaluation.evaluate_scene(args.image, args.mask, dsm=args.dsm, method=args.method,
                                        model_path=args.model, device=args.device, bands=args.bands,
                                        radiometry=args.radiometry, runtime=args.runtime)
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:>10}: {v:.4f}" if isinstance(v, float) else f"{k:>10}: {v}")
    return 0


def _trainers() -> dict:
    """`train NAME` -> its module: every trainer the registry names, plus `weak` (your own labels)."""
    from .registry import METHODS
    names = {m.trainer for m in METHODS.values() if m.trainer} | {"weak"}
    return {n: f"landslide_wsss.training.{n.replace('-', '_')}" for n in sorted(names)}


TRAINERS = _trainers()


def _add_train(sub) -> None:
    p = sub.add_parser("train", help=f"train a model ({', '.join(sorted(TRAINERS))})",
                       add_help=False)
    p.add_argument("what", choices=sorted(TRAINERS))
    p.set_defaults(func=_cmd_train)


def _cmd_train(args, rest: List[str]) -> int:
    module = importlib.import_module(TRAINERS[args.what])
    return int(module.main(rest) or 0)


def _add_sample(sub) -> None:
    p = sub.add_parser("sample-scene", help="write the synthetic sample scene (GeoTIFF, EPSG:32647)")
    p.add_argument("output")
    p.add_argument("--size", type=int, help="side in px (default: the standard sample scene's)")
    p.add_argument("--dsm", help="also write a matching DSM here")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=_cmd_sample)


def _cmd_sample(args) -> int:
    from .sample import make_sample_scene

    size = {} if args.size is None else {"size": args.size}
    make_sample_scene(args.output, overwrite=args.overwrite, dsm_path=args.dsm, **size)
    print(args.output)
    return 0


def _add_labels(sub) -> None:
    p = sub.add_parser("labels", help="label inputs for training: a tile grid to tick in QGIS")
    lsub = p.add_subparsers(dest="kind", required=True, parser_class=_Parser)
    g = lsub.add_parser("grid", help="write the scenes' tile grid as polygons with an empty integer field 'label'")
    g.add_argument("scenes", nargs="+", help="GeoTIFF scene(s), one projected CRS")
    g.add_argument("-o", "--output", required=True, help=f"output GeoPackage (.gpkg), layer {GRID_LAYER}")
    g.add_argument("--tile-m", type=float, default=DEFAULT_TILE_M, help="tile side in metres (default %(default)g)")
    g.add_argument("--overwrite", action="store_true")
    g.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_labels)


def _cmd_labels(args) -> int:
    from .labels import label_grid

    grid = label_grid(args.scenes, args.output, tile_m=args.tile_m, overwrite=args.overwrite)
    res = {"output": args.output, "tiles": int(len(grid)), "crs": grid.crs.to_string(), "layer": GRID_LAYER}
    print(json.dumps(res) if args.json else f"{args.output}: {len(grid)} tiles of {args.tile_m:g} m to tick "
          "(field 'label': 1 landslide, 0 none, empty = not looked at)")
    return 0


def _add_methods(sub) -> None:
    p = sub.add_parser("methods", help="list the methods (--method NAME) and the model's default")
    p.add_argument("--model", help="model file (default: the embedded model)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=_cmd_methods)


def _cmd_methods(args) -> int:
    from .wsss import describe_methods

    res = describe_methods(args.model)
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"default: {res['default']}  (model {res['model']})")
    for m in res["methods"]:
        mark = "" if m["available"] else "  [not in this model file]"
        print(f"  {m['name']:<28} {m['kind']:<10} {m['description']}{mark}")
    return 0


def _add_export(sub) -> None:
    p = sub.add_parser("export", help="export networks of a model file to ONNX")
    esub = p.add_subparsers(dest="kind", required=True, parser_class=_Parser)
    o = esub.add_parser("onnx", help="one self-contained ONNX model in the form the Deepness QGIS plugin runs")
    o.add_argument("model_file", nargs="?", help="model file (default: the embedded model; or --model)")
    o.add_argument("--model", help="model file (default: the embedded model)")
    o.add_argument("--method", help="student (default) or unet (the supervised yardstick)")
    o.add_argument("--tile", type=int, help="square tile size in px (default: the network's)")
    o.add_argument("-o", "--output", required=True, help="output .onnx")
    o.add_argument("--overwrite", action="store_true", help="replace an existing output")
    g = esub.add_parser("graphs", help="(re)write the ONNX graphs a model file carries for the light runtime")
    g.add_argument("model_file", help="model file (.safetensors), rewritten in place")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args) -> int:
    from .errors import InputError
    from .runtime import available

    if not (available("torch") and available("onnx")):
        raise InputError("export needs torch and onnx: pip install 'landslide_wsss[train]'")
    from . import onnx_export

    if args.kind == "graphs":
        done = onnx_export.embed_graphs(args.model_file)
        print(f"{args.model_file}: ONNX graphs " + ", ".join(f"{c} ({', '.join(g)})" for c, g in done.items()))
        return 0
    if args.model and args.model_file:
        raise InputError("give the model file once (positional or --model)")
    from .raster import check_output
    from .wsss import DEFAULT_MODEL

    out = check_output(args.output, args.overwrite)
    path = onnx_export.export_deepness(args.model or args.model_file or DEFAULT_MODEL, out, method=args.method,
                                       tile=args.tile)
    print(f"{path}: ONNX model for Deepness ({args.method or 'default method'})")
    return 0


def _add_model_card(sub) -> None:
    p = sub.add_parser("model-card", help="write MODEL_CARD.md from a model file's metadata")
    p.add_argument("--model", help="model file (default: the embedded model)")
    p.add_argument("-o", "--output", default="MODEL_CARD.md", help="output markdown (default MODEL_CARD.md)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.set_defaults(func=_cmd_model_card)


def _cmd_model_card(args) -> int:
    from .model_card import write
    from .wsss import DEFAULT_MODEL

    print(write(args.model or DEFAULT_MODEL, args.output, overwrite=args.overwrite))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="landslide-wsss", description="Weakly supervised landslide mapping for GeoTIFF scenes.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_detect(sub)
    _add_preview(sub)
    _add_evaluate(sub)
    _add_train(sub)
    _add_sample(sub)
    _add_methods(sub)
    _add_labels(sub)
    _add_export(sub)
    _add_model_card(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] in (["train", "-h"], ["train", "--help"]):  # `train` hands its options on to the trainer it names
        print("usage: landslide-wsss train WHAT [options]   (landslide-wsss train WHAT --help: its options)\n\n"
              "WHAT: " + ", ".join(sorted(TRAINERS)))
        return 0
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    jsonl = getattr(args, "jsonl", False)
    from .errors import LandslideWSSSError

    shown = warnings.showwarning
    _show_input_warnings(jsonl)
    terminate = _stop_on_sigterm()
    try:
        if args.command == "train":
            return _cmd_train(args, rest)
        if rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return args.func(args)
    except LandslideWSSSError as exc:
        return _fail(str(exc), 2, jsonl)
    except Terminated:
        return _fail("terminated; nothing was written", 128 + signal.SIGTERM, jsonl)
    except KeyboardInterrupt:
        return _fail("interrupted; nothing was written", 130, jsonl)
    except Exception as exc:  # noqa: BLE001 - last resort: one line, not a traceback
        if args.debug:
            raise
        return _fail(f"unexpected {type(exc).__name__}: {exc} (rerun with --debug for details)", 1, jsonl)
    finally:
        warnings.showwarning = shown
        if terminate is not None:
            signal.signal(signal.SIGTERM, terminate)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the command was, so every cleanup that Ctrl-C runs runs."""


def _stop_on_sigterm():
    """`kill` (SIGTERM) stops a command as Ctrl-C does, so its outputs are cleaned up (atomic_output)
    and it says so, instead of dying mid-write. Returns the handler it replaced (None off the main
    thread, where Python cannot take signals)."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, frame):
        raise Terminated

    return signal.signal(signal.SIGTERM, stop)


def _show_input_warnings(jsonl: bool) -> None:
    """The package's input warnings (radiometry, resolution) as one `warning:` line each on stderr
    (a JSON-lines message with --jsonl), not Python's two-line warning format."""
    from .errors import InputWarning

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, InputWarning):
            return default(message, category, filename, lineno, file, line)
        if jsonl:
            _emit({"event": "message", "level": "warning", "text": str(message)})
        else:
            sys.stderr.write(f"warning: {message}\n")

    warnings.showwarning = show


def _fail(message: str, code: int, jsonl: bool) -> int:
    message = " ".join(str(message).split())
    if jsonl:
        _emit({"event": "error", "message": message})
    sys.stderr.write(f"error: {message}\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
