"""The study's protocol: Adam 3e-4 x 0.97 every 2 epochs, majority-vote targets, batch 64,
the FERPlus reference augmentation, up to the reference trainer's 100 epochs, best on valid."""
from ferjax.config import DataConfig, LossConfig, ModelConfig, OptimConfig, RunConfig

EPOCHS = 100


def get_config(model: str) -> RunConfig:
    return RunConfig(
        data=DataConfig(data="synthetic", label_mode="majority", features="O", image_size=64, batch_size=64),
        model=ModelConfig(name=model),
        loss=LossConfig(lam=0.0, alpha=0.5),
        optim=OptimConfig(optimizer="adam", learning_rate=3e-4, schedule="step", decay_rate=0.97,
                          decay_every_epochs=2),
        epochs=EPOCHS, seed=0)
