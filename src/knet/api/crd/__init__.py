"""CustomResourceDefinitions (apiextensions.k8s.io/v1): structural schemas (validation,
defaulting, pruning), the ResourceTypes a CRD serves, and the controller that registers them."""
