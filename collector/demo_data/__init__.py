"""Real model outputs shipped as package data for the demo (documentation only; no code).

``selftrain_series.jsonl``
    A real model-collapse series: SmolLM2-135M-Instruct fine-tuned on its own samples, one
    generation after another (Shumailov et al. 2024), produced by ``scripts/self_train.py``.
    Model ``assistant-selftrained``; version ``v{g+1}`` is generation ``g`` (v1 = the base model).
    Six fine-tuned generations (v1..v7).  Each version answers the first 24 default probes, 4
    samples each, temperature 1.0, 40 new tokens, seed 1234.  Fields: prompt_id, prompt, output,
    model, version, generation, seed.

``control_series.jsonl``
    The healthy control: three independent samples (seeds 1235, 1236, 1237) of the BASE model on
    the same probes and settings, as versions v1..v3 of model ``assistant-control``.

How they were made, the hyper-parameters and their scores: ``docs/self_training.md``.
"""
