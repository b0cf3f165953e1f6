"""A model bundle is one signed unit: `manifest.json` lists the sha256 of every file in the folder (the ONNX model,
its sidecars, card.json and card.md) and carries an Ed25519 signature by a WardLens release key. The loader reads
each file once into memory, checks it against the manifest, and loads from those bytes: a file swapped after the
check is never the one used, and a model swapped together with a fresh sha256 is refused because the manifest no
longer verifies.

Trusted keys: the release keys below (the private half is held by whoever makes releases, never in the
repository), plus, only where WARDLENS_TRUST_DEV_MODELS=1 is set (development and the test suite), the
development key that `python -m training` made in this user's data folder for bundles trained here."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.core.errors import WardLensError
from services.core.paths import user_data_dir
from services.store import signing

MANIFEST = "manifest.json"
FORMAT = "wardlens-model-manifest"
PURPOSE = "model-bundle"
MAX_BUNDLE_BYTES = 200 * 2**20
RELEASE_KEYS = {
    # key id: public key (base64). A new release key is added here; an old one is removed when no bundle uses it.
    "wardlens-release-2026-12": "Y/CzuzNPbExH5BS8R+rBF0PKxkmKRRWwO0sJd++sJew=",
    "wardlens-release-2026-12-06": "hGqdrHse2civYqLWYGqepBpKjD/QMrKRJScXAXI1zcQ=",
}
DEV_KEY_FILE = "model-signing-dev.key"


class ModelIntegrityError(WardLensError, RuntimeError):
    """A bundled model is incomplete, altered, or not signed by a trusted key; it is never loaded."""


def _canonical(name: str, files: dict[str, str]) -> str:
    return json.dumps({"name": name, "files": dict(sorted(files.items()))}, sort_keys=True, separators=(",", ":"))


def _dev_key_path() -> Path:
    return Path(os.environ.get("WARDLENS_MODEL_DEV_KEY") or user_data_dir() / DEV_KEY_FILE)


def _trusted() -> dict[str, str]:
    keys = dict(RELEASE_KEYS)
    if os.environ.get("WARDLENS_TRUST_DEV_MODELS") == "1" and _dev_key_path().exists():
        keys["development"] = signing.b64(signing.public_raw(_load_key(_dev_key_path())))
    return keys


def _load_key(path: Path) -> Ed25519PrivateKey:
    return signing.key_from_raw(signing.unb64(path.read_text(encoding="ascii").strip()))


def signing_key() -> tuple[str, Ed25519PrivateKey]:
    """The release key named by WARDLENS_RELEASE_KEY (a file holding the base64 private key), else this user's
    development key (made on first use, 0600)."""
    release = os.environ.get("WARDLENS_RELEASE_KEY")
    if release:
        key = _load_key(Path(release))
        pub = signing.b64(signing.public_raw(key))
        key_id = next((k for k, v in RELEASE_KEYS.items() if v == pub), None)
        if key_id is None:
            raise ModelIntegrityError("WARDLENS_RELEASE_KEY is not one of the release keys this WardLens trusts.")
        return key_id, key
    path = _dev_key_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(signing.b64(signing.private_raw(signing.new_key())))
    return "development", _load_key(path)


def write_manifest(directory: Path | str) -> Path:
    """Sign every file of a finished bundle (training pipelines call this last)."""
    directory = Path(directory)
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(directory.iterdir())
             if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")}
    key_id, key = signing_key()
    manifest = {"format": FORMAT, "name": directory.name, "files": files, "key_id": key_id,
                "signature": signing.b64(key.sign(signing.message(PURPOSE, _canonical(directory.name, files))))}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return directory / MANIFEST


def read_bundle(directory: Path | str) -> tuple[dict[str, bytes], dict[str, str]]:
    """Every file the manifest lists, as bytes checked against it; and the manifest's digests. Raises
    ModelIntegrityError with a sentence for a missing, unsigned, wrongly signed, altered or extra-large bundle."""
    directory = Path(directory)
    where = f"The model bundle {directory.name}"
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
        name, files = str(manifest["name"]), {str(k): str(v) for k, v in dict(manifest["files"]).items()}
        key_id, sig = str(manifest["key_id"]), str(manifest["signature"])
    except FileNotFoundError:
        raise ModelIntegrityError(f"{where} has no signed manifest; it is not loaded. Reinstall WardLens.") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelIntegrityError(f"{where}: its manifest is damaged ({exc.__class__.__name__}); it is not loaded.") \
            from exc
    if name != directory.name:   # a signed bundle of another model copied into this folder
        raise ModelIntegrityError(f"{where} holds the signed {name!r} model, not {directory.name!r}; it is not loaded. "
                                  "Reinstall WardLens.")
    pub = _trusted().get(key_id)
    if pub is None or not signing.verifies(pub, sig, PURPOSE, _canonical(name, files)):
        raise ModelIntegrityError(f"{where} is not signed by a key this WardLens trusts (altered or replaced); it is "
                                  "not loaded. Reinstall WardLens.")
    data: dict[str, bytes] = {}
    total = 0
    for fname, digest in files.items():
        if "/" in fname or "\\" in fname or fname.startswith("."):
            raise ModelIntegrityError(f"{where}: its manifest names an unexpected file {fname!r}.")
        try:
            blob = (directory / fname).read_bytes()
        except OSError as exc:
            raise ModelIntegrityError(f"{where} lacks {fname} ({exc.__class__.__name__}); reinstall WardLens.") from exc
        total += len(blob)
        if total > MAX_BUNDLE_BYTES:
            raise ModelIntegrityError(f"{where} is larger than its limit; it is not loaded.")
        if hashlib.sha256(blob).hexdigest() != digest:
            raise ModelIntegrityError(f"{where}: {fname} does not match its signed manifest (altered or replaced); the "
                                      "model is not loaded. Reinstall WardLens.")
        data[fname] = blob
    return data, files
