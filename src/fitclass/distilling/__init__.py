"""Knowledge distillation: a finished run (the teacher) taught to a trainable backbone (the
student), which trains through `fitclass.train` with a `distil` recipe section.

- `teacher.py`: the teacher run, its cached probabilities, unlabelled rows, agreement.
- `workflow.py`: `fitclass.distil` (the student's recipe from the teacher's, then train).
"""
