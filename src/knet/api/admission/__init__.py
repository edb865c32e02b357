"""Validating admission plugins of kube-apiserver that knet runs (ObjectService.admission)."""
