"""The training settings: one frozen dataclass, checked once; every caller reads its defaults."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

import gpubp
from gpubp.cli.train import TRAIN_DEFAULTS
from gpubp.settings import COMMAND_EPOCHS, COMMAND_LR, EPOCHS, TrainSettings
from gpubp.training import Trainer


def test_settings_are_frozen_and_checked_once():
    s = TrainSettings(lr=0.05, momentum=0.9)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.lr = 1.0  # type: ignore[misc]
    assert s.replace(batch_size=8).batch_size == 8
    assert s.batch_size == 32
    with pytest.raises(ValueError, match="lr must be > 0"):
        s.replace(lr=0)
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        TrainSettings(nesterov=True)
    with pytest.raises(ValueError, match="momentum and nesterov apply to optimizer='sgd'"):
        TrainSettings(optimizer="adam", momentum=0.5)
    with pytest.raises(TypeError, match=r"unknown training setting.*lr_decay"):
        TrainSettings.of(lr_decay=0.5)
    with pytest.raises(TypeError, match="betas must be a pair"):
        TrainSettings(betas=0.9)


def test_a_checkpoint_round_trip_keeps_every_setting():
    s = TrainSettings(optimizer="adam", betas=(0.8, 0.99), eps=1e-6, patience=3, decay_mean=True)
    assert TrainSettings(**s.as_dict()) == s
    assert len(s.as_numbers()) == len(dataclasses.fields(s)) + 1  # betas as two numbers


def test_no_caller_keeps_its_own_defaults():
    # fit and the Trainer take the settings' fields as keywords, without defaults of their own
    for fn in (gpubp.MLP.fit, Trainer.__init__):
        params = inspect.signature(fn).parameters
        assert not set(params) & {f.name for f in dataclasses.fields(TrainSettings)}, fn
    assert inspect.signature(gpubp.MLP.fit).parameters["epochs"].default == EPOCHS
    net = gpubp.MLP([2, 3, 2], device="cpu", seed=0)
    trainer = Trainer(net, [[0.0, 1.0], [1.0, 0.0]], [0, 1], momentum=0.5)
    assert trainer.settings == TrainSettings(momentum=0.5)
    # the command: the library's, except where gpubp.settings says it differs on purpose
    library = TrainSettings()
    assert TRAIN_DEFAULTS["epochs"] == COMMAND_EPOCHS
    assert TRAIN_DEFAULTS["batch_size"] == library.batch_size
    assert TRAIN_DEFAULTS["shuffle"] == library.shuffle
    assert COMMAND_LR["classify"] != library.lr  # on purpose, said in gpubp/settings.py
