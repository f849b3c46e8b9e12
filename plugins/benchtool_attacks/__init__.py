"""benchtool's built-in adversarial attacks, one plugin module per attack."""
