"""The TFX training pipeline: one backend-agnostic definition (pipeline.py), its module
files (preprocessing.py for Transform, trainer.py for the Trainer), the backbones
(models/) and one thin module per orchestrator (backends/). Nothing here imports Prefect.
"""
