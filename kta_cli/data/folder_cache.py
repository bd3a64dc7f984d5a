"""Image folders decoded once: a uint8 tensor store on disk, keyed by the folder's content.

Written by hand: torchvision and timm re-decode files every epoch, and FFCV needs its own file
format and compiled readers; a small folder only needs its pixels kept once, at the model's size.

A store is one safetensors file (data only), for each part p of the folder (`all`, or `train`,
`val`, `test` when it is split): `p.images` uint8 (N, 3, S, S), resized to S = img_size as
transforms.resize() does, and `p.labels` int64 (N), in ImageFolder's order. Metadata (strings):
`format`, `key`, `root`, `img_size`, `classes` (JSON: part -> class names) and `crc32` of every
tensor's bytes, so a damaged file is noticed and rebuilt. The key hashes each file's relative
path, size, mtime and label, plus img_size and the resize mode: a changed folder gets a new file.
Files are written to a temporary name and renamed, so a reader never sees half a store.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, UnidentifiedImageError
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets import ImageFolder
from torchvision.transforms.v2.functional import pil_to_tensor, to_dtype

from kta_cli.data.transforms import resize
from kta_cli.errors import KtaError

log = logging.getLogger(__name__)
FORMAT = "kta-folder-store/1"
RESIZE = "bilinear-antialias-square"  # transforms.resize(); part of the key if it ever changes


@dataclass
class StorePart:
    """One decoded folder: uint8 pixels at img_size, ImageFolder's labels and class names."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: list[str]


def load_image(path: str) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError) as error:
        raise KtaError(f"unreadable image file {path} ({type(error).__name__})") from error


def decode_resized(path: str, img_size: int) -> torch.Tensor:
    """uint8 (3, img_size, img_size): the file's pixels as the per-sample path resizes them,
    rounded back to uint8 (at most half a grey level away; exact when no resize is needed)."""
    pixels = pil_to_tensor(load_image(path))
    if pixels.shape[-2:] == (img_size, img_size):
        return pixels
    scaled = resize(to_dtype(pixels, torch.float32, scale=True), img_size)
    return (scaled * 255).round_().clamp_(0, 255).to(torch.uint8)


def memory_bytes(count: int, img_size: int) -> int:
    """What `count` decoded images take in memory as the loaders hold them (float32)."""
    return count * 3 * img_size * img_size * 4


class _Decoding(Dataset):
    """(index, pixels or the error's message): a bad file reaches the main process as one line."""

    def __init__(self, paths: list[str], img_size: int) -> None:
        self.paths, self.img_size = paths, img_size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | str]:
        try:
            return index, decode_resized(self.paths[index], self.img_size)
        except KtaError as error:
            return index, str(error)


def _as_list(batch: list) -> list:
    return batch


def decode_folder(folder: ImageFolder, img_size: int, num_workers: int) -> StorePart:
    """Every image of `folder`, decoded once (in `num_workers` processes when asked)."""
    paths = [path for path, _ in folder.samples]
    images = torch.empty((len(paths), 3, img_size, img_size), dtype=torch.uint8)
    batches = DataLoader(
        _Decoding(paths, img_size),
        batch_size=64,
        num_workers=num_workers,
        collate_fn=_as_list,
        generator=torch.Generator(),  # its seed draw would shift the global RNG: the first run
    )  # (which decodes) and later runs (which read the store) must initialise models alike
    for batch in batches:
        for index, pixels in batch:
            if isinstance(pixels, str):
                raise KtaError(pixels)
            images[index] = pixels
    labels = torch.tensor([label for _, label in folder.samples], dtype=torch.long)
    return StorePart(images, labels, list(folder.classes))


def content_key(parts: dict[str, ImageFolder], img_size: int) -> str:
    """A hash of what the store holds: files (path, size, mtime, label), size and resize."""
    digest = hashlib.sha256(json.dumps([FORMAT, RESIZE, img_size]).encode())
    for name, folder in sorted(parts.items()):
        digest.update(json.dumps([name, folder.classes]).encode())
        for path, label in folder.samples:
            stat = os.stat(path)
            entry = [os.path.relpath(path, folder.root), stat.st_size, stat.st_mtime_ns, label]
            digest.update(json.dumps(entry).encode())
    return digest.hexdigest()[:24]


def cache_folders(root: Path, cache_dir: str | None) -> list[Path]:
    """Where stores live, in the order tried: data.cache_dir, else beside the data folder (not
    inside it, where ImageFolder would take .kta_cache for a class), else the user's cache."""
    if cache_dir:
        return [Path(cache_dir).expanduser()]
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kta" / "folders"
    return [root.parent / ".kta_cache", user]


def _checksum(tensors: dict[str, torch.Tensor]) -> str:
    crc = 0
    for name in sorted(tensors):
        crc = zlib.crc32(tensors[name].contiguous().view(torch.uint8).numpy(), crc)
    return str(crc)


def read_store(path: Path, key: str) -> dict[str, StorePart]:
    """The store in `path`; KtaError with the reason when it is damaged or made for other data."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = handle.metadata() or {}
            tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118
        classes = json.loads(meta.get("classes", "{}"))
    except (SafetensorError, OSError, ValueError) as error:
        raise KtaError(f"unreadable ({type(error).__name__}: {error})") from error
    if meta.get("format") != FORMAT or meta.get("key") != key:
        raise KtaError("made for other files or another kta version")
    if meta.get("crc32") != _checksum(tensors):
        raise KtaError("its checksum does not match (a damaged file)")
    try:
        return {
            part: StorePart(tensors[f"{part}.images"], tensors[f"{part}.labels"], names)
            for part, names in classes.items()
        }
    except KeyError as error:
        raise KtaError(f"tensor {error} is missing") from error


def write_store(path: Path, parts: dict[str, StorePart], *, key: str, root: Path, img_size: int):
    """Save atomically: a temporary file in the same folder, then a rename over `path`."""
    tensors = {}
    for part, store in parts.items():
        tensors[f"{part}.images"] = store.images.contiguous()
        tensors[f"{part}.labels"] = store.labels.contiguous()
    meta = {
        "format": FORMAT,
        "key": key,
        "root": str(root),
        "img_size": str(img_size),
        "classes": json.dumps({part: store.classes for part, store in parts.items()}),
        "crc32": _checksum(tensors),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file(tensors, str(partial), metadata=meta)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _remove_stale(folder: Path, prefix: str, keep: Path, root: Path) -> None:
    """Stores of an earlier state of the same folder at the same size: replaced by `keep`."""
    for other in folder.glob(f"{glob.escape(prefix)}-*.safetensors"):
        if other == keep:
            continue
        try:
            with safe_open(str(other), framework="pt") as handle:
                same_root = (handle.metadata() or {}).get("root") == str(root)
        except (SafetensorError, OSError, ValueError):
            continue  # not ours to judge
        if same_root:
            other.unlink(missing_ok=True)


def load_or_build(
    root: Path,
    parts: dict[str, ImageFolder],
    *,
    img_size: int,
    num_workers: int = 0,
    cache_dir: str | None = None,
) -> dict[str, StorePart]:
    """The decoded parts of the folder at `root`: read from a saved store when one matches the
    files now there, else decoded once and saved (in the first cache folder that takes it)."""
    root = root.resolve()
    key = content_key(parts, img_size)
    name = f"{root.name}-{img_size}px-{key}.safetensors"
    folders = cache_folders(root, cache_dir)
    for folder in folders:
        path = folder / name
        if not path.is_file():
            continue
        try:
            stores = read_store(path, key)
        except KtaError as why:
            log.warning("image-folder cache %s is %s; decoding the folder again", path, why)
            continue
        log.info("image folder %s: decoded images from %s", root, path)
        return stores
    started = time.perf_counter()
    stores = {part: decode_folder(folder, img_size, num_workers) for part, folder in parts.items()}
    seconds = time.perf_counter() - started
    for folder in folders:
        path = folder / name
        try:
            write_store(path, stores, key=key, root=root, img_size=img_size)
        except OSError as error:  # read-only data folder: try the next place
            log.info("cannot write the image-folder cache to %s (%s)", folder, error)
            continue
        _remove_stale(folder, f"{root.name}-{img_size}px", path, root)
        log.info("image folder %s: decoded once in %.1f s, saved %s", root, seconds, path)
        return stores
    log.warning("image folder %s: no cache folder is writable; decoded images kept in memory", root)
    return stores
