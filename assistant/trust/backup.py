"""The gateway's state as one file: the home CA (with its private key), the gateway's database
(paired devices, tokens, the request log) and the home's state, encrypted with the owner's
token.

    blob = make_backup(data_dir, store, token)       # what GET /v1/backup answers
    restore_backup(blob, token, new_data_dir)        # `galaxy restore`, the gateway stopped

Format: b"GHBK1" | 16-byte salt | 12-byte nonce | AES-256-GCM(tar.gz), the key scrypt(token,
salt). Without the token the file reveals nothing and cannot be restored; with it, restoring
also requires that the token is a full, unrevoked token of the home being restored.
"""

from __future__ import annotations

import io
import os
import sqlite3
import tarfile
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from assistant.errors import InvalidInput
from assistant.store import Store
from assistant.trust.tokens import hash_token

MAGIC = b"GHBK1"
DATABASES = ("gateway.sqlite3", "home.sqlite3")


def _key(token: str, salt: bytes) -> bytes:
    return Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(token.encode())


def make_backup(data_dir: Path, store: Store, token: str) -> bytes:
    """The encrypted archive of `data_dir`'s CA and databases (consistent copies)."""
    buffer = io.BytesIO()
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        copy = Path(tmp) / "gateway.sqlite3"
        store.backup_to(copy)
        tar.add(copy, "gateway.sqlite3")
        home = data_dir / "home.sqlite3"
        if home.exists():
            source, target = sqlite3.connect(str(home)), sqlite3.connect(str(Path(tmp) / "h"))
            source.backup(target)
            source.close()
            target.close()
            tar.add(Path(tmp) / "h", "home.sqlite3")
        tar.add(data_dir / "ca", "ca")
    salt, nonce = os.urandom(16), os.urandom(12)
    return MAGIC + salt + nonce + AESGCM(_key(token, salt)).encrypt(nonce, buffer.getvalue(), MAGIC)


def restore_backup(blob: bytes, token: str, data_dir: Path, *, force: bool = False) -> list[str]:
    """Unpack a backup into `data_dir` (which must be empty unless `force`); returns the files
    written. Refused (`InvalidInput`) for a wrong token, a damaged file, or a token that is not
    a full token of the backed-up home."""
    if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + 28:
        raise InvalidInput("not a Galaxy Home backup")
    salt, nonce = blob[5:21], blob[21:33]
    try:
        archive = AESGCM(_key(token, salt)).decrypt(nonce, blob[33:], MAGIC)
    except InvalidTag:
        raise InvalidInput(
            "refused: this backup was not made with that token (or is damaged)"
        ) from None
    if data_dir.exists() and any(data_dir.iterdir()) and not force:
        raise InvalidInput(f"{data_dir} is not empty: stop the gateway and pass --force")
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(tmp, filter="data")
        check = Store(Path(tmp) / "gateway.sqlite3")
        try:
            found = check.find_token(hash_token(token))
        finally:
            check.close()
        if found is None or found.revoked or found.scope != "full":
            raise InvalidInput("refused: that token is not a full token of the backed-up home")
        written = []
        for path in sorted(Path(tmp).rglob("*")):
            if path.is_file():
                target = data_dir / path.relative_to(tmp)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(path.read_bytes())
                if path.parent.name == "ca":
                    target.chmod(0o600)
                written.append(str(path.relative_to(tmp)))
        return written
