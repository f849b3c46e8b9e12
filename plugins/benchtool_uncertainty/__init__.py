"""benchtool's built-in uncertainty estimators, one plugin module per estimator."""
