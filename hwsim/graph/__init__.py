"""Graph IR and the importers/exporters of model files."""
