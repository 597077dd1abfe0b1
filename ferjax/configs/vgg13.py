"""VGG13 (FERPlus reference) under the study's protocol: the light preset with the other model."""
import dataclasses

from ferjax.configs import light


def get_config():
    base = light.get_config()
    return base.replace(model=dataclasses.replace(base.model, name="vgg13"))
