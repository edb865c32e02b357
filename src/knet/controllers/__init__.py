"""knet.controllers: kube-controller-manager's controllers, over the API only (list + watch).

Each controller is level-triggered and idempotent: its `sync_key` reads the shared informer
caches (base.InformerFactory) and makes the API match, whatever events led there, so a restart
converges from the API alone. Decisions are pure `compute_*` / `detect_*` functions (tested by
tables); `sync_*` / `sync_key` do the API calls. `manager.run_controller_manager` runs them by
their upstream names (--controllers).
"""
