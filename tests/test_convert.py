"""cnnfast.convert: layers swapped, activations fused, keys kept, the rest left alone."""

import torch
from torch import nn as tnn

import cnnfast
from cnnfast.models import ReferenceLeNet5


def test_converts_lenet5_with_the_same_outputs_and_keys(capsys):
    torch.manual_seed(0)
    reference = ReferenceLeNet5().double()
    converted = cnnfast.convert(reference)
    summary = capsys.readouterr().out
    assert "fused Conv2d+Tanh ×2, Linear+Tanh ×2" in summary and "kept none" in summary
    assert isinstance(converted.features[0], cnnfast.nn.Conv2d) and converted.features[0].activation == "tanh"
    assert isinstance(converted.features[1], tnn.Identity)
    assert isinstance(converted.features[2], cnnfast.nn.AvgPool2d)
    assert isinstance(converted.classifier[4], cnnfast.nn.Linear) and converted.classifier[4].activation is None
    assert converted.state_dict().keys() == reference.state_dict().keys()
    x = torch.randn(4, 1, 32, 32, dtype=torch.float64)
    torch.testing.assert_close(converted(x), reference(x))
    # A copy: the original is untouched and does not share parameters.
    assert type(reference.features[0]) is tnn.Conv2d
    assert converted.features[0].weight.data_ptr() != reference.features[0].weight.data_ptr()
    converted.load_state_dict(reference.state_dict())


def test_leaves_unsupported_layers(capsys):
    model = tnn.Sequential(
        tnn.Conv2d(3, 4, 3, dilation=2), tnn.ReLU(), tnn.BatchNorm2d(4), tnn.Dropout(),
        tnn.MaxPool2d(3, 2), tnn.LocalResponseNorm(3), tnn.Flatten(),
        tnn.Sequential(tnn.Linear(36, 5), tnn.ReLU(), tnn.Linear(5, 2)),
    ).eval()
    converted = cnnfast.convert(model)
    summary = capsys.readouterr().out
    assert "kept BatchNorm2d ×1, Conv2d ×1, Dropout ×1" in summary
    assert type(converted[0]) is tnn.Conv2d  # dilated: kept
    assert isinstance(converted[1], cnnfast.nn.ReLU)  # not fused into a torch conv
    assert isinstance(converted[4], cnnfast.nn.MaxPool2d)
    assert isinstance(converted[5], cnnfast.nn.LocalResponseNorm)
    assert converted[7][0].activation == "relu" and isinstance(converted[7][1], tnn.Identity)
    x = torch.randn(2, 3, 11, 11)
    torch.testing.assert_close(converted(x), model(x), rtol=1e-5, atol=1e-6)
    cnnfast.convert(model, verbose=False)
    assert capsys.readouterr().out == ""


def test_a_single_layer():
    layer = tnn.Linear(3, 2)
    converted = cnnfast.convert(layer, verbose=False)
    assert isinstance(converted, cnnfast.nn.Linear)
    x = torch.randn(4, 3)
    torch.testing.assert_close(converted(x), layer(x))


# torchvision.models.alexnet's state_dict, key by key (torchvision 0.2x).
TORCHVISION_ALEXNET = {
    "features.0.weight": (64, 3, 11, 11), "features.0.bias": (64,),
    "features.3.weight": (192, 64, 5, 5), "features.3.bias": (192,),
    "features.6.weight": (384, 192, 3, 3), "features.6.bias": (384,),
    "features.8.weight": (256, 384, 3, 3), "features.8.bias": (256,),
    "features.10.weight": (256, 256, 3, 3), "features.10.bias": (256,),
    "classifier.1.weight": (4096, 9216), "classifier.1.bias": (4096,),
    "classifier.4.weight": (4096, 4096), "classifier.4.bias": (4096,),
    "classifier.6.weight": (1000, 4096), "classifier.6.bias": (1000,),
}


def test_alexnet_owt_has_torchvisions_state_dict_and_outputs():
    from cnnfast.models import ReferenceAlexNetOWT, alexnet_owt

    torch.manual_seed(0)
    model = alexnet_owt().eval()
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == TORCHVISION_ALEXNET
    reference = ReferenceAlexNetOWT().eval()
    model.load_state_dict(reference.state_dict())
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(x), rtol=1e-4, atol=1e-4)
    assert isinstance(model.features[0], cnnfast.nn.Conv2d) and model.features[0].activation == "relu"
    assert isinstance(model.features[2], cnnfast.nn.MaxPool2d)
    assert model.classifier[1].activation == "relu" and model.classifier[6].activation is None
