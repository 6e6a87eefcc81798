"""Transfer learning: an encoder frozen for the first epochs, then fine-tuned.

(The encoder's lower learning rate is a parameter group: training/optim.py.)"""

import logging

from segexp.models.wrapper import SegmentationModel

log = logging.getLogger(__name__)


def freeze_schedule(model: SegmentationModel, epoch: int, writer) -> None:
    """Call at the start of every epoch (1-based): frozen for epochs 1..N
    (``model.freeze_encoder_epochs``), trainable after."""
    freeze_epochs = model.freeze_encoder_epochs
    if freeze_epochs <= 0:
        return
    frozen = epoch <= freeze_epochs
    if frozen != model.encoder_frozen or epoch == 1:
        model.set_encoder_frozen(frozen)
        if frozen:
            log.info(
                "encoder frozen (weights and BatchNorm statistics) for epochs 1-%d", freeze_epochs
            )
        else:
            log.info("epoch %d: encoder unfrozen, fine-tuning the whole model", epoch)
            writer.add_text("schedule", f"encoder unfrozen at epoch {epoch}", epoch)
    writer.add_scalar("train/encoder_frozen", float(frozen), epoch)
