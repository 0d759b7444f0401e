"""The run record: one package owns a run folder's file names (`layout`), its creation,
status and lock (`folder`, `lock`), the one writer of a finished run (`writer`), the typed
readers (`readers`), the loaded `Run` (`run`), listing and resuming.

Import the modules themselves (`from fitclass.runs.run import load_run`): this file imports
nothing, so the lower modules (`layout`, `folder`) stay cheap for the training loop.
"""
