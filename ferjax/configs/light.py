"""The light model under the study's protocol: Adam 3e-4 x 0.97 every 2 epochs, majority labels."""
from ferjax.config import DataConfig, LossConfig, ModelConfig, OptimConfig, RunConfig


def get_config() -> RunConfig:
    return RunConfig(
        data=DataConfig(data="synthetic", label_mode="majority", features="O", image_size=64, batch_size=64),
        model=ModelConfig(name="light"),
        loss=LossConfig(lam=0.0, alpha=0.5),
        optim=OptimConfig(learning_rate=3e-4, decay_rate=0.97, decay_every_epochs=2),
        epochs=30, seed=0)
