"""OpenAI request fields -> a model's declared parameters (api/mapping.py),
without a server: each rule comes from the declarations."""

import io

from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image
import pytest

from playground.api.catalog import Resolved
from playground.api.errors import ApiError
from playground.api.mapping import plan
from playground.providers import registry


def resolved(provider, model):
    return Resolved(f"{provider}/{model}", provider, model, registry.get(provider).models[model])


def upload():
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 20, 30)).save(out, "PNG")
    return SimpleUploadedFile("in.png", out.getvalue(), "image/png")


def test_an_image_switches_a_model_to_the_mode_that_takes_it():
    p = plan(resolved("kie", "nano-banana"), "edits", {"prompt": "make it blue"}, {"image": [upload()]})
    assert p.params["model"] == "google/nano-banana-edit" and "image" in p.images


def test_sizes_become_each_models_own_size_fields():
    assert plan(resolved("kie", "flux-kontext"), "generations", {"prompt": "x", "size": "1024x576"}, {}
                ).params["aspect_ratio"] == "16:9"
    assert plan(resolved("kie", "qwen"), "generations", {"prompt": "x", "size": "1536x1024"}, {}
                ).params["image_size"] == "landscape_4_3"
    kvid = plan(resolved("kvid", "text-to-image"), "generations", {"prompt": "x", "size": "768x512"}, {}).params
    assert (kvid["size_mode"], kvid["width"], kvid["height"]) == ("custom", 768, 512)
    assert plan(resolved("kawai", "generations"), "generations", {"prompt": "x", "size": "auto"}, {}).params == {
        "prompt": "x", "n": 1}  # auto: the model's default size


@pytest.mark.parametrize("provider, model, fields, param", [
    ("kie", "flux-kontext", {"prompt": "x", "size": "1792x1024"}, "size"),  # 7:4 is not offered
    ("kie", "gpt4o-image", {"prompt": "x", "n": 3}, "n"),  # its own count takes 1, 2 or 4
    ("kvid", "text-to-image", {"prompt": "x", "output_format": "webp"}, "output_format"),
    # an aspect ratio of its own (declared first) leaves no room for a WIDTHxHEIGHT
    ("kvid", "text-to-image", {"prompt": "x", "size": "1024x1024", "aspect_ratio": "16:9"}, "size"),
    ("kawai", "variations", {"prompt": "x"}, "prompt"),
    ("kvid", "image-to-image", {"prompt": "x"}, "model"),  # needs an image: the edits endpoint
    ("kwiki", "generate", {"prompt": "x", "provider_params": "not an object"}, "provider_params"),
])
def test_what_a_model_cannot_take_names_the_field(provider, model, fields, param):
    with pytest.raises(ApiError) as e:
        plan(resolved(provider, model), "generations", fields, {})
    assert (e.value.status, e.value.param) == (400, param)


def test_multipart_strings_are_typed_by_the_declarations():
    p = plan(resolved("kvid", "text-to-image"), "generations",
             {"prompt": "x", "n": "2", "seed": "7", "enable_safety_checker": "false", "guidance_scale": "7.5"}, {})
    assert (p.params["num_images"], p.params["seed"], p.params["enable_safety_checker"],
            p.params["guidance_scale"]) == (2, 7, False, 7.5)
    assert p.jobs == 1
