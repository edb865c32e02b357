"""`knet lab`: practice labs played on a knet cluster, answered from the cluster and checked
against its live state.

- `model.py`: what a lab is (questions, hints, setup) and the answer helpers (pure);
- `facts.py`: parsers of what the cluster shows (flags, `ip addr`, `ss`, Corefile, ...) (pure);
- `access.py`: the small interface to a cluster (objects, exec in a pod, a command in a node),
  its real side (kubectl and `knet ssh`) and the setup recorder that makes `reset` possible;
- `fake.py`: the fake side, an in-memory cluster for unit tests;
- `state.py`: the running lab's state file (under the cluster's state dir);
- `engine.py`: start / answer / check / hint / reset;
- `catalog/`: one module per lab (adding a lab is adding a file there).
"""
