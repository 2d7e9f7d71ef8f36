"""`python -m quranft <args>`, with each training batch recorded and an optional kill (or, by
`recording`, a training in the test's own process).

Every batch a CTC-only training step receives is appended to the file $QURANFT_RECORD_BATCHES as
one JSON line: the global step, the epoch and a key per clip (quranft.training.dataloading.clip_keys).
With $QURANFT_KILL_AT_STEP, the process sends itself SIGKILL as it is about to train that step:
a job preempted between two checkpoints, that never cleans up. (quranft is imported only when run,
so that a test reads the records without importing NeMo.)
"""

from __future__ import annotations

import json
import os
import signal
import sys

RECORD, KILL_AT = "QURANFT_RECORD_BATCHES", "QURANFT_KILL_AT_STEP"


def read_batches(path) -> list[dict]:
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines]


def recording(training_step):
    """`training_step`, recording each batch (and killing the process at $QURANFT_KILL_AT_STEP)."""
    from quranft.training.dataloading import clip_keys

    def step(self, batch, batch_nb):
        if os.environ.get(KILL_AT) and self.trainer.global_step == int(os.environ[KILL_AT]):
            os.kill(os.getpid(), signal.SIGKILL)
        with open(os.environ[RECORD], "a", encoding="utf-8") as out:
            out.write(json.dumps({"step": self.trainer.global_step, "epoch": self.trainer.current_epoch,
                                  "clips": clip_keys(batch)}) + "\n")
        return training_step(self, batch, batch_nb)

    return step


if __name__ == "__main__":
    from quranft.cli import main
    from quranft.models.nemo_models import CTCOnlyHybridModel

    CTCOnlyHybridModel.training_step = recording(CTCOnlyHybridModel.training_step)
    sys.exit(main(sys.argv[1:]))
