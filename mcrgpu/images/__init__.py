"""Image tasks on SavedModels under the strategy: pair matching, image x reference jobs, tiled rasters, binning, OCR."""

from mcrgpu.images.binning import bin_images
from mcrgpu.images.grid import run_grid
from mcrgpu.images.ocr import OcrSummary, run_ocr
from mcrgpu.images.pairs import PAIR_OUTPUTS, match_pairs, read_pair_list
from mcrgpu.images.runner import (Item, RunSummary, SavedModelSignature, describe_saved_model, load_signature,
                                  run_items)
from mcrgpu.images.tiles import TileSummary, declare_tiling, run_tiles

__all__ = ["bin_images", "match_pairs", "read_pair_list", "PAIR_OUTPUTS", "run_grid", "run_items", "load_signature",
           "describe_saved_model", "Item", "RunSummary", "SavedModelSignature",
           "run_tiles", "declare_tiling", "TileSummary", "run_ocr", "OcrSummary"]
