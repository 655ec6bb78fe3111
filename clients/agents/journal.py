"""What a participant must remember across a crash: the opening of each commitment.

A participant that commits and is then killed must still reveal, or it is slashed and its
input is lost. Before the commit transaction is sent, the blob's CID and the salt are written
here (a new file, flushed to disk, then renamed into place, mode 0600: the salt keeps the
commitment hiding until Reveal). A restarted participant reveals from it when the chain shows
its commitment. Round secrets of the masking protocols (s_u^SK, b_u, the shares received) are
not kept: a participant restarted between ShareKeys and Reveal sits that round out, and the
round goes on without it (dropout recovery).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ServiceError

__all__ = ["CommitJournal"]


class CommitJournal:
    """Round -> the openings (blob CID, salt) of one participant's commitments in one task, in
    ``directory``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise ServiceError(f"cannot create the state directory {directory}: {exc}") from exc

    def _path(self, round: int) -> Path:
        return self.directory / f"commit-{round}.json"

    def save(self, round: int, cid: str, salt: bytes) -> None:
        """Durably adds an opening to round ``round``'s (a process killed after sending its
        commit transaction, but before it was mined, may commit again after a restart: every
        opening is kept, and Reveal opens the one the chain holds)."""
        openings = [*self.load(round), (cid, salt)]
        target = self._path(round)
        temporary = target.with_suffix(".tmp")
        temporary.unlink(missing_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump([{"cid": c, "salt": s.hex()} for c, s in openings], out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
        directory = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def load(self, round: int) -> list[tuple[str, bytes]]:
        """The openings saved for ``round``, oldest first (none: an empty list)."""
        try:
            data = json.loads(self._path(round).read_text())
            return [(str(o["cid"]), bytes.fromhex(o["salt"])) for o in data]
        except FileNotFoundError:
            return []
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ServiceError(f"unreadable commit journal for round {round}: {exc}") from exc
