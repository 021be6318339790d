"""The classroom: applications built on the model for people, not tests. The compose
lab's control (``labctl``), the walkthrough of the procedure and its proofs, the
exercises, the doctor, and lag you can look at (``lagview``). ``pgstandby lab ...``
drives them; the pytest plugin uses ``lagview`` for a failing lag check's picture."""
